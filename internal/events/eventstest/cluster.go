package eventstest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a JetStream cluster of embedded servers owned by one test,
// each node on its own loopback client and route ports with its own store
// directory, so a node can be stopped (as a host dies) and started again
// on the same ports and store (as it comes back). Streams created with
// Replicas: 3 survive one node down.
type Cluster struct {
	tb    testing.TB
	name  string
	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	name       string
	dir        string
	clientPort int
	routePort  int
	ns         *server.Server
}

// StartCluster starts an n-node cluster (n ≥ 3 for R3 streams) and waits
// until JetStream has a meta leader, registering its shutdown with
// tb.Cleanup.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, name: "eventstest-cluster"}
	for i := range n {
		c.nodes = append(c.nodes, &clusterNode{name: fmt.Sprintf("n%d", i+1), dir: tb.TempDir(),
			clientPort: freePort(tb), routePort: freePort(tb)})
	}
	tb.Cleanup(func() {
		for i := range c.nodes {
			c.Stop(i)
		}
	})
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); c.start(i) }()
	}
	wg.Wait()
	c.WaitForLeader()
	return c
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the node binds it; on a test machine that is rare, and a
// node that cannot bind fails the test loudly.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("eventstest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (c *Cluster) start(i int) {
	c.tb.Helper()
	nd := c.nodes[i]
	var routes []*url.URL
	for j, o := range c.nodes {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", o.routePort)})
		}
	}
	opts := &server.Options{
		ServerName: nd.name,
		Host:       "127.0.0.1",
		Port:       nd.clientPort,
		JetStream:  true,
		StoreDir:   nd.dir,
		NoLog:      true,
		NoSigs:     true,
		Cluster:    server.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: nd.routePort},
		Routes:     routes,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		c.tb.Errorf("eventstest: node %s: %v", nd.name, err)
		return
	}
	go ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		ns.Shutdown()
		c.tb.Errorf("eventstest: node %s not ready on port %d", nd.name, nd.clientPort)
		return
	}
	c.mu.Lock()
	nd.ns = ns
	c.mu.Unlock()
}

// URLs is the comma-separated client URL list of every node, as NATS_URL
// takes it: a client fails over to another node when one stops.
func (c *Cluster) URLs() string {
	var us []string
	for _, nd := range c.nodes {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", nd.clientPort))
	}
	return strings.Join(us, ",")
}

// Stop shuts node i down and waits for it, as a host that dies; stopping a
// stopped node does nothing.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	ns := c.nodes[i].ns
	c.nodes[i].ns = nil
	c.mu.Unlock()
	if ns == nil {
		return
	}
	ns.Shutdown()
	ns.WaitForShutdown()
}

// Restart starts node i again on its ports and store directory and waits
// until the cluster has a JetStream meta leader again.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	c.mu.Lock()
	running := c.nodes[i].ns != nil
	c.mu.Unlock()
	if running {
		c.tb.Fatalf("eventstest: Restart of running node %s", c.nodes[i].name)
	}
	c.start(i)
	c.WaitForLeader()
}

// WaitForLeader waits until a running node knows the JetStream meta
// leader and every running node sees all its routes' peers that are up.
func (c *Cluster) WaitForLeader() {
	c.tb.Helper()
	WaitFor(c.tb, 30*time.Second, "a JetStream meta leader in "+c.name, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, nd := range c.nodes {
			if nd.ns != nil && nd.ns.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
}
