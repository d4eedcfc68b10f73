package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// The host agent service, written by hand (no protoc): service "mizar.HostAgent", unary methods
// "Apply" and "Stats", messages in JSON under the gRPC content subtype "json".
const (
	agentService    = "mizar.HostAgent"
	agentApplyPath  = "/" + agentService + "/Apply"
	agentStatsPath  = "/" + agentService + "/Stats"
	jsonContentType = "json"
)

// ApplyRequest is the message of HostAgent.Apply.
type ApplyRequest struct {
	Ops []Op `json:"ops"`
}

// ApplyReply is its answer.
type ApplyReply struct{}

// StatsRequest is the message of HostAgent.Stats.
type StatsRequest struct{}

// AgentStats is what a host agent reports about itself (the answer of HostAgent.Stats).
type AgentStats struct {
	// Writes is the number of ops the agent applied since it started.
	Writes uint64 `json:"writes"`
	// Counters are its data plane's packet counters by reason ("bounced", "delivered"); zero
	// counters may be left out.
	Counters map[string]uint64 `json:"counters,omitempty"`
}

// StatsReporter is a host agent that reports AgentStats. The HostAgent DialAgent returns is
// one; its Stats fails with codes.Unimplemented when the remote agent does not report them.
type StatsReporter interface {
	Stats(ctx context.Context) (AgentStats, error)
}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return jsonContentType }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// agentServer is the interface grpc.ServiceDesc checks the served value against.
type agentServer interface {
	HostAgent
}

// unary is the method name of the service, served by call on a decoded Req.
func unary[Req any](name string, call func(srv any, ctx context.Context, req *Req) (any, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			req := new(Req)
			if err := dec(req); err != nil {
				return nil, err
			}
			if icpt == nil {
				return call(srv, ctx, req)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + agentService + "/" + name}
			return icpt(ctx, req, info, func(ctx context.Context, req any) (any, error) { return call(srv, ctx, req.(*Req)) })
		},
	}
}

var agentServiceDesc = grpc.ServiceDesc{
	ServiceName: agentService,
	HandlerType: (*agentServer)(nil),
	Methods: []grpc.MethodDesc{
		unary("Apply", func(srv any, ctx context.Context, req *ApplyRequest) (any, error) {
			if err := srv.(HostAgent).Apply(ctx, req.Ops); err != nil {
				return nil, err
			}
			return &ApplyReply{}, nil
		}),
		unary("Stats", func(srv any, ctx context.Context, _ *StatsRequest) (any, error) {
			r, ok := srv.(StatsReporter)
			if !ok {
				return nil, status.Error(codes.Unimplemented, "this host agent reports no stats")
			}
			st, err := r.Stats(ctx)
			if err != nil {
				return nil, err
			}
			return &st, nil
		}),
	},
	Metadata: "controlplane/grpcagent.go",
}

// RegisterAgentServer serves agent as the host agent service on s.
func RegisterAgentServer(s grpc.ServiceRegistrar, agent HostAgent) {
	s.RegisterService(&agentServiceDesc, agent)
}

// NewGRPCAgentServer returns a gRPC server serving agent; the caller calls Serve on a listener.
func NewGRPCAgentServer(agent HostAgent, opts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(opts...)
	RegisterAgentServer(s, agent)
	return s
}

// grpcAgent is a HostAgent that calls a remote one.
type grpcAgent struct {
	conn *grpc.ClientConn
}

func (g grpcAgent) Apply(ctx context.Context, ops []Op) error {
	if err := g.conn.Invoke(ctx, agentApplyPath, &ApplyRequest{Ops: ops}, new(ApplyReply),
		grpc.CallContentSubtype(jsonContentType)); err != nil {
		return fmt.Errorf("apply %d ops at %s: %w", len(ops), g.conn.Target(), err)
	}
	return nil
}

func (g grpcAgent) Stats(ctx context.Context) (AgentStats, error) {
	var st AgentStats
	if err := g.conn.Invoke(ctx, agentStatsPath, &StatsRequest{}, &st, grpc.CallContentSubtype(jsonContentType)); err != nil {
		return st, fmt.Errorf("stats of agent at %s: %w", g.conn.Target(), err)
	}
	return st, nil
}

// DialAgent returns a HostAgent calling the agent served at addr (it is a StatsReporter too),
// and the Closer of its connection. With no options the connection is plaintext, as on a lab underlay; pass
// grpc.WithTransportCredentials to secure it. Connecting is lazy: errors show on Apply.
func DialAgent(addr string, opts ...grpc.DialOption) (HostAgent, io.Closer, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("dial agent %s: %w", addr, err)
	}
	return grpcAgent{conn: conn}, conn, nil
}
