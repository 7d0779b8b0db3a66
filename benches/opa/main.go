// opa-ext-authz: an Envoy ext_authz gRPC server that decides with OPA's Rego engine, as
// the opa-envoy-plugin does, for tollgate's benchmarks (benches/README.md).
//
// The real opa-envoy-plugin is not served by the Go module proxy reachable here, so this
// program rebuilds its request path from the modules that are: the CheckRequest becomes
// the policy's `input` through protojson (as the plugin does), a prepared Rego query is
// evaluated with OPA's inter-query builtin value cache in its server default (parsed
// JWKS cached, verified tokens not cached; -jwt-cache N turns the token cache on), and
// the answer is OK or PERMISSION_DENIED. It is a benchmark peer, nothing more: it
// listens on loopback only and fetches the JWKS once at start.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"github.com/open-policy-agent/opa/v1/util"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
)

type authorizer struct {
	authv3.UnimplementedAuthorizationServer
	query rego.PreparedEvalQuery
	cache cache.InterQueryValueCache
}

func (a *authorizer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	allowed, err := a.decide(ctx, req)
	if err != nil || !allowed {
		return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)}}, nil
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}, nil
}

func (a *authorizer) decide(ctx context.Context, req *authv3.CheckRequest) (bool, error) {
	raw, err := protojson.Marshal(req)
	if err != nil {
		return false, err
	}
	var input map[string]any
	if err := util.UnmarshalJSON(raw, &input); err != nil {
		return false, err
	}
	results, err := a.query.Eval(ctx, rego.EvalInput(input), rego.EvalInterQueryBuiltinValueCache(a.cache))
	if err != nil {
		return false, err
	}
	return results.Allowed(), nil
}

func fetchJWKS(url string) (string, error) {
	client := http.Client{Timeout: 5 * time.Second}
	answer, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer answer.Body.Close()
	if answer.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, answer.Status)
	}
	body, err := io.ReadAll(io.LimitReader(answer.Body, 512*1024))
	return string(body), err
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "gRPC listen address (loopback)")
	jwksURL := flag.String("jwks-url", "", "JWKS URL, fetched once at start")
	issuer := flag.String("issuer", "", "required iss")
	audience := flag.String("audience", "api://orders", "required aud")
	policy := flag.String("policy", "policy.rego", "Rego policy file")
	jwtCache := flag.Int("jwt-cache", 0, "entries of OPA's io_jwt verified-token cache (0: off, the server default)")
	flag.Parse()

	jwks, err := fetchJWKS(*jwksURL)
	if err != nil {
		log.Fatalf("cannot fetch the JWKS: %v", err)
	}
	module, err := os.ReadFile(*policy)
	if err != nil {
		log.Fatalf("cannot read the policy: %v", err)
	}
	data := map[string]any{"jwks": jwks, "issuer": *issuer, "audience": *audience}
	ctx := context.Background()
	query, err := rego.New(
		rego.Query("data.tollgate.authz.allow"),
		rego.Module(*policy, string(module)),
		rego.Store(inmem.NewFromObject(data)),
	).PrepareForEval(ctx)
	if err != nil {
		log.Fatalf("cannot prepare the policy: %v", err)
	}

	config := &cache.Config{}
	if *jwtCache > 0 {
		config.InterQueryBuiltinValueCache.NamedCacheConfigs = map[string]*cache.NamedValueCacheConfig{
			"io_jwt": {MaxNumEntries: jwtCache},
		}
	}
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("cannot listen: %v", err)
	}
	if ip := listener.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		log.Fatalf("refusing to listen on non-loopback %s", ip)
	}
	server := grpc.NewServer()
	authv3.RegisterAuthorizationServer(server, &authorizer{
		query: query,
		cache: cache.NewInterQueryValueCache(ctx, config),
	})
	ready, _ := json.Marshal(map[string]string{"listening": listener.Addr().String()})
	fmt.Println(string(ready))
	if err := server.Serve(listener); err != nil {
		log.Fatal(err)
	}
}
