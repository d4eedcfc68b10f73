package controlplane

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func serveAgent(t *testing.T, agent HostAgent) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := NewGRPCAgentServer(agent)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestGRPCAgent(t *testing.T) {
	rec := NewRecordingAgent()
	client, closer, err := DialAgent(serveAgent(t, rec))
	must(t, err)
	defer closer.Close()

	ops := []Op{
		{Kind: OpUpsertVPC, VNI: 7, Prefix: pfx("10.0.0.0/16"), Addrs: []netip.Addr{hostIP(1), hostIP(2)}, Flag: true, Bouncer: true},
		{Kind: OpUpsertNetwork, VNI: 7, NetID: 1, Prefix: pfx("10.0.1.0/24"), Flag: true},
		{Kind: OpSetBouncers, VNI: 7, NetID: 1, Addrs: []netip.Addr{hostIP(3)}},
		{Kind: OpUpsertBouncerEntry, VNI: 7, IP: addr("10.0.1.2"), Host: hostIP(3)},
		{Kind: OpUpsertEndpoint, VNI: 7, NetID: 1, IP: addr("10.0.1.2"), MAC: EndpointMAC(7, addr("10.0.1.2")),
			Interface: HostVeth(7, addr("10.0.1.2")), VPCCIDR: pfx("10.0.0.0/16")},
		{Kind: OpUpsertNeighbor, IP: hostIP(3), MAC: net.HardwareAddr{0xaa, 0, 0, 0, 0, 3}},
		{Kind: OpDeleteEndpoint, VNI: 7, IP: addr("10.0.1.2")},
	}
	must(t, client.Apply(ctx, ops))
	if got := rec.Ops(); !reflect.DeepEqual(got, ops) {
		t.Errorf("server got\n%v\nwant\n%v", got, ops)
	}

	rec.FailWith(errors.New("map full"))
	err = client.Apply(ctx, ops[:1])
	if err == nil || !strings.Contains(err.Error(), "map full") {
		t.Errorf("got %v, want the agent's error", err)
	}
}

// grpcAgents dials each host's agent by name.
type grpcAgents map[string]HostAgent

func (g grpcAgents) Agent(host string) (HostAgent, error) { return g[host], nil }

func TestControllerOverGRPC(t *testing.T) {
	recs := map[string]*RecordingAgent{}
	agents := grpcAgents{}
	for _, h := range hostNames(3) {
		recs[h] = NewRecordingAgent()
		a, closer, err := DialAgent(serveAgent(t, recs[h]))
		must(t, err)
		t.Cleanup(func() { closer.Close() })
		agents[h] = a
	}
	c, err := New(Options{Agents: agents})
	must(t, err)
	for i, h := range hostNames(3) {
		must(t, c.AddHost(ctx, Host{Name: h, IP: hostIP(i + 1)}))
	}
	mustVPC(t, c, VPC{Name: "v", CIDR: pfx("10.0.0.0/16"), Dividers: 1})
	mustNet(t, c, Network{Name: "n", VPC: "v", CIDR: pfx("10.0.1.0/24"), Bouncers: 2})
	mustEP(t, c, Endpoint{Name: "e", VPC: "v", Network: "n", Host: "host-00"})
	total := 0
	for _, r := range recs {
		total += len(r.Ops())
	}
	if s := c.Stats().Total.Total; total != s || total == 0 {
		t.Errorf("agents got %d ops over gRPC, controller counted %d", total, s)
	}
}

// statsAgent is a RecordingAgent that reports how many ops it recorded.
type statsAgent struct{ *RecordingAgent }

func (s statsAgent) Stats(context.Context) (AgentStats, error) {
	return AgentStats{Writes: uint64(len(s.Ops())), Counters: map[string]uint64{"bounced": 3}}, nil
}

func TestGRPCAgentStats(t *testing.T) {
	rec := statsAgent{NewRecordingAgent()}
	client, closer, err := DialAgent(serveAgent(t, rec))
	must(t, err)
	defer closer.Close()
	must(t, client.Apply(ctx, []Op{{Kind: OpUpsertNeighbor, IP: hostIP(2), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}, {Kind: OpDeleteNeighbor, IP: hostIP(2)}}))
	st, err := client.(StatsReporter).Stats(ctx)
	must(t, err)
	if st.Writes != 2 || st.Counters["bounced"] != 3 {
		t.Errorf("stats over grpc: %+v, want 2 writes and bounced=3", st)
	}

	// An agent that reports nothing says so.
	plain, closer2, err := DialAgent(serveAgent(t, NewRecordingAgent()))
	must(t, err)
	defer closer2.Close()
	if _, err := plain.(StatsReporter).Stats(ctx); status.Code(errors.Unwrap(err)) != codes.Unimplemented {
		t.Errorf("stats of an agent without them: %v, want Unimplemented", err)
	}
}
