// SPDX-License-Identifier: MIT
//
// VMware's vSphere API simulator (govmomi's simulator package) on
// 127.0.0.1, for the tests (tests/support/vcsim.py builds and runs it).
// Argument: esx (a standalone host) or vpx (vCenter; the default). The
// environment gives the one user and password it accepts, its TLS
// certificate and key, and VCSIM_NESTED_HV=false for hosts that cannot nest. Prints its URL on one line, then serves until its
// standard input closes (the test session ended, or died) or a signal.
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

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
