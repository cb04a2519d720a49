"""The Linux appliances that a level above L0 boots: Linux/KVM and Xen dom0."""
