// SPDX-License-Identifier: MIT
//
// VMware's vSphere API simulator (govmomi's simulator package) on
// 127.0.0.1, for the tests (tests/support/vcsim.py builds and runs it).
// Argument: esx (a standalone host) or vpx (vCenter; the default). The
// environment gives the one user and password it accepts, its TLS
// certificate and key, VCSIM_NESTED_HV=false for hosts that cannot nest,
// and VCSIM_DELAY (below). Prints its URL on one line, then serves until its
// standard input closes (the test session ended, or died) or a signal.
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// The simulator names a manager (the FileManager) as the entity of its
// tasks, which is no ManagedEntity: pyVmomi 9 refuses to read such a
// TaskInfo. This gives those tasks no entity.
type taskEntities struct{}

func (taskEntities) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "nvct", Value: "task-entities"}
}

func (taskEntities) PutObject(o mo.Reference) {
	if t, ok := o.(*simulator.Task); ok && t.Info.Entity != nil && strings.HasSuffix(t.Info.Entity.Type, "Manager") {
		t.Info.Entity, t.Info.EntityName = nil, ""
	}
}

func (taskEntities) UpdateObject(mo.Reference, []types.PropertyChange) {}
func (taskEntities) RemoveObject(types.ManagedObjectReference)         {}

func main() {
	// The test's own certificate: httptest's is RSA 1024, which OpenSSL refuses.
	pair, err := tls.LoadX509KeyPair(os.Getenv("VCSIM_CERT"), os.Getenv("VCSIM_KEY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "vcsim:", err)
		os.Exit(2)
	}
	model := simulator.VPX()
	if len(os.Args) > 1 && os.Args[1] == "esx" {
		model = simulator.ESX()
	}
	if err = model.Create(); err != nil {
		fmt.Fprintln(os.Stderr, "vcsim:", err)
		os.Exit(1)
	}
	defer model.Remove() // the datastores' temporary folders
	// The model's hosts have no capability at all (the simulator's Fetch of
	// it fails); a real host reports one, and whether it can nest.
	nested := os.Getenv("VCSIM_NESTED_HV") != "false"
	for _, host := range simulator.Map.All("HostSystem") {
		host.(*simulator.HostSystem).Capability = &types.HostCapability{NestedHVSupported: &nested}
	}
	simulator.Map.AddHandler(taskEntities{})
	// VCSIM_DELAY=METHOD: that method's calls take 3 s (the simulator's
	// own DelayConfig, for a slow vCenter).
	if method := os.Getenv("VCSIM_DELAY"); method != "" {
		model.DelayConfig.MethodDelay = map[string]int{method: 3000}
	}
	user := url.UserPassword(os.Getenv("VCSIM_USER"), os.Getenv("VCSIM_PASSWORD"))
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: user}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	server := model.Service.NewServer()
	defer server.Close()
	fmt.Printf("https://%s%s\n", server.URL.Host, server.URL.Path)
	done := make(chan os.Signal, 1)
	signal.Notify(done, syscall.SIGINT, syscall.SIGTERM)
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); done <- syscall.SIGHUP }()
	<-done
}
