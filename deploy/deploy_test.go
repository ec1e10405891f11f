// Package deploy_test checks that the deployment files agree with each other:
// docker-compose.yml (loaded with compose-go, as docker compose would), envoy.yaml
// (loaded with envoyconfig), go.mod and deploy/Dockerfile. No Docker engine runs
// here, so these static checks are what keeps `docker compose up` honest.
package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/tollgate-dev/tollgate/internal/envoyconfig"
)

// Names fixed by the shared contract.
const (
	envoyService        = "envoy"
	tollgateService     = "tollgate"
	redisService        = "redis"
	postgresService     = "postgres"
	postgresURLVar      = "TOLLGATE_POSTGRES_URL"
	fakeProviderService = "fake-provider"
	demoProfile         = "demo"

	listenerName      = "llm"
	tollgateCluster   = "tollgate"
	demoCluster       = "prov_demo"
	envoyModule       = "github.com/envoyproxy/go-control-plane/envoy"
	envoyImage        = "envoyproxy/envoy"
	envoyDefaultConf  = "/etc/envoy/envoy.yaml" // the official image's default -c
	dockerfilePath    = "deploy/Dockerfile"
	demoKeyVar        = "TOLLGATE_DEMO_PROVIDER_KEY"
	demoKeyDefault    = "demo-provider-key"
	tollgateBinary    = "/usr/local/bin/tollgate"
	envoytestBinary   = "/usr/local/bin/envoytest"
	policyVar         = "TOLLGATE_POLICY"
	grpcAddrVar       = "TOLLGATE_GRPC_ADDR"
	adminAddrVar      = "TOLLGATE_ADMIN_ADDR"
	serviceHealthy    = "service_healthy"
	defaultGRPCPort   = 50051
	defaultAdminPort  = 9090
	loopbackPublishIP = "127.0.0.1"
)

// repoDir is the repository root, the compose project's working directory.
func repoDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadProject loads docker-compose.yml the way `docker compose` would, with the
// given environment only (no OS environment, no .env file), so that no real key
// leaks into the test and the result does not depend on the machine.
func loadProject(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	dir := repoDir(t)
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(kv),
		cli.WithProfiles(profiles),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q (services: %v)", name, p.ServiceNames())
	}
	return s
}

func loadEnvoy(t *testing.T) *envoyconfig.Model {
	t.Helper()
	bs, err := envoyconfig.LoadFile(filepath.Join(repoDir(t), "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := envoyconfig.NewModel(bs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestServicesAndProfiles(t *testing.T) {
	base := loadProject(t, nil)
	if got, want := sortedNames(base.ServiceNames()), []string{envoyService, postgresService, redisService, tollgateService}; !slices.Equal(got, want) {
		t.Errorf("services without a profile = %v, want %v", got, want)
	}
	demo := loadProject(t, nil, demoProfile)
	if got, want := sortedNames(demo.ServiceNames()), []string{envoyService, fakeProviderService, postgresService, redisService, tollgateService}; !slices.Equal(got, want) {
		t.Errorf("services with --profile demo = %v, want %v", got, want)
	}
	if got := service(t, demo, fakeProviderService).Profiles; !slices.Equal(got, []string{demoProfile}) {
		t.Errorf("fake-provider profiles = %v, want [demo]", got)
	}
}

func sortedNames(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestEveryServiceHasAHealthcheck(t *testing.T) {
	p := loadProject(t, nil, demoProfile)
	for name, s := range p.Services {
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
			t.Errorf("service %s has no healthcheck", name)
		}
	}
}

func TestHealthcheckDependencies(t *testing.T) {
	p := loadProject(t, nil, demoProfile)
	for _, dep := range []struct{ from, to string }{
		{envoyService, tollgateService},
		{tollgateService, redisService},
		{tollgateService, postgresService},
	} {
		d, ok := service(t, p, dep.from).DependsOn[dep.to]
		if !ok || d.Condition != serviceHealthy {
			t.Errorf("%s must depend on %s with condition %s, got %+v", dep.from, dep.to, serviceHealthy, d)
		}
	}
}

// TestEnvoyImageMatchesGoMod pins the Envoy image to the Envoy release whose API
// the go-control-plane module in go.mod describes (ENVOY-EXTPROC section 8): a
// newer module would accept fields the deployed Envoy rejects.
func TestEnvoyImageMatchesGoMod(t *testing.T) {
	version := goModVersion(t, filepath.Join(repoDir(t), "go.mod"), envoyModule)
	want := envoyImage + ":" + version
	if got := service(t, loadProject(t, nil), envoyService).Image; got != want {
		t.Errorf("envoy image = %q, want %q (the version of %s in go.mod)", got, want, envoyModule)
	}
}

// goModVersion finds module's version in the require directives of a go.mod.
// golang.org/x/mod is not in the module graph, and the format needed here (one
// "path version" pair per require line, single or in a block) is simple.
func goModVersion(t *testing.T, file, module string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inRequire := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "require (":
			inRequire = true
			continue
		case inRequire && line == ")":
			inRequire = false
			continue
		case strings.HasPrefix(line, "require "):
			line = strings.TrimPrefix(line, "require ")
		case !inRequire:
			continue
		}
		if fields := strings.Fields(line); len(fields) == 2 && fields[0] == module {
			return fields[1]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("%s does not require %s", file, module)
	return ""
}

func TestEnvoyPortsAndConfigMount(t *testing.T) {
	m := loadEnvoy(t)
	envoy := service(t, loadProject(t, nil), envoyService)

	l := m.Listener(listenerName)
	if l == nil {
		t.Fatalf("envoy.yaml has no listener %q", listenerName)
	}
	// The listener serves clients, so it is published; the admin interface can
	// stop Envoy and dump its config, so it is published on loopback only.
	checkPublished(t, envoy, l.Port(), "")
	checkPublished(t, envoy, m.AdminPort(), loopbackPublishIP)

	conf := envoyConfigPath(envoy)
	v := bindMountAt(envoy, conf)
	if v == nil {
		t.Fatalf("envoy does not mount anything at %s, the config path it runs with", conf)
	}
	if want := filepath.Join(repoDir(t), "envoy.yaml"); v.Source != want {
		t.Errorf("envoy mounts %s at %s, want %s", v.Source, conf, want)
	}
	if !v.ReadOnly {
		t.Errorf("envoy.yaml is mounted read-write")
	}
}

// envoyConfigPath returns the -c (or --config-path) argument of the envoy
// service's command, or the image's default when the command sets none.
func envoyConfigPath(s types.ServiceConfig) string {
	for i, arg := range s.Command {
		if (arg == "-c" || arg == "--config-path") && i+1 < len(s.Command) {
			return s.Command[i+1]
		}
		for _, flag := range []string{"-c=", "--config-path="} {
			if v, ok := strings.CutPrefix(arg, flag); ok {
				return v
			}
		}
	}
	return envoyDefaultConf
}

// checkPublished asserts that the service publishes container port target on
// the same host port, bound to hostIP ("" meaning all interfaces).
func checkPublished(t *testing.T, s types.ServiceConfig, target uint32, hostIP string) {
	t.Helper()
	for _, p := range s.Ports {
		if p.Target != target {
			continue
		}
		if p.Published != strconv.Itoa(int(target)) {
			t.Errorf("%s publishes container port %d on host port %q, want %d", s.Name, target, p.Published, target)
		}
		if p.HostIP != hostIP {
			t.Errorf("%s publishes port %d on host IP %q, want %q", s.Name, target, p.HostIP, hostIP)
		}
		return
	}
	t.Errorf("%s does not publish port %d (ports: %+v)", s.Name, target, s.Ports)
}

// bindMountAt returns the bind mount whose target is dir, or nil.
func bindMountAt(s types.ServiceConfig, dir string) *types.ServiceVolumeConfig {
	for i, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == dir {
			return &s.Volumes[i]
		}
	}
	return nil
}

// TestEnvoyClustersReachServices checks that the clusters envoy.yaml dials are
// the compose services, at the ports those services listen on.
func TestEnvoyClustersReachServices(t *testing.T) {
	m := loadEnvoy(t)
	p := loadProject(t, nil, demoProfile)

	tollgate := service(t, p, tollgateService)
	grpcPort := addrPort(t, tollgate.Environment, grpcAddrVar, defaultGRPCPort)
	if !exposes(tollgate, grpcPort) {
		t.Errorf("tollgate does not expose its gRPC port %d (expose: %v)", grpcPort, tollgate.Expose)
	}
	checkClusterTarget(t, m, tollgateCluster, tollgateService, grpcPort)

	fake := service(t, p, fakeProviderService)
	fakePort := flagPort(t, fake.Command, "--addr")
	if !exposes(fake, fakePort) {
		t.Errorf("fake-provider does not expose its port %d (expose: %v)", fakePort, fake.Expose)
	}
	checkClusterTarget(t, m, demoCluster, fakeProviderService, fakePort)
}

func checkClusterTarget(t *testing.T, m *envoyconfig.Model, cluster, svc string, port uint32) {
	t.Helper()
	c := m.Cluster(cluster)
	if c == nil {
		t.Fatalf("envoy.yaml has no cluster %q", cluster)
	}
	if len(c.Endpoints) != 1 {
		t.Fatalf("cluster %s has %d endpoints, want 1", cluster, len(c.Endpoints))
	}
	if e := c.Endpoints[0]; e.Address != svc || e.Port != port {
		t.Errorf("cluster %s dials %s:%d, want the compose service %s:%d", cluster, e.Address, e.Port, svc, port)
	}
}

// addrPort returns the port of a host:port address in the service's
// environment, or def when the variable is unset or empty.
func addrPort(t *testing.T, env types.MappingWithEquals, name string, def uint32) uint32 {
	t.Helper()
	v := env[name]
	if v == nil || *v == "" {
		return def
	}
	_, port, err := net.SplitHostPort(*v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, *v, err)
	}
	return parsePort(t, port)
}

// flagPort returns the port of the host:port value of flag in a command line.
func flagPort(t *testing.T, cmd types.ShellCommand, flag string) uint32 {
	t.Helper()
	for i, arg := range cmd {
		v, ok := strings.CutPrefix(arg, flag+"=")
		if !ok && arg == flag && i+1 < len(cmd) {
			v, ok = cmd[i+1], true
		}
		if ok {
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				t.Fatalf("%s %q: %v", flag, v, err)
			}
			return parsePort(t, port)
		}
	}
	t.Fatalf("command %q has no %s flag", cmd, flag)
	return 0
}

func parsePort(t *testing.T, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return uint32(n)
}

func exposes(s types.ServiceConfig, port uint32) bool {
	return slices.Contains([]string(s.Expose), strconv.Itoa(int(port)))
}

// TestTollgateAdminAndHealthchecks checks that tollgate's admin port is
// published on loopback and that the healthchecks probe the ports the
// services listen on, with the binary the image provides.
func TestTollgateAdminAndHealthchecks(t *testing.T) {
	p := loadProject(t, nil, demoProfile)
	tollgate := service(t, p, tollgateService)
	adminPort := addrPort(t, tollgate.Environment, adminAddrVar, defaultAdminPort)
	checkPublished(t, tollgate, adminPort, loopbackPublishIP)
	checkHealthcheckURL(t, tollgate, adminPort, "/readyz")

	fake := service(t, p, fakeProviderService)
	checkHealthcheckURL(t, fake, flagPort(t, fake.Command, "--addr"), "/healthz")
}

// checkHealthcheckURL asserts that the service's healthcheck is
// `tollgate healthcheck --url http://127.0.0.1:<port><path>`.
func checkHealthcheckURL(t *testing.T, s types.ServiceConfig, port uint32, path string) {
	t.Helper()
	test := []string(s.HealthCheck.Test)
	if len(test) < 5 || test[0] != "CMD" || test[1] != tollgateBinary || test[2] != "healthcheck" || test[3] != "--url" {
		t.Fatalf("%s healthcheck = %q, want [CMD %s healthcheck --url URL]", s.Name, test, tollgateBinary)
	}
	u, err := url.Parse(test[4])
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" || u.Port() != strconv.Itoa(int(port)) || u.Path != path {
		t.Errorf("%s healthcheck probes %s, want http://127.0.0.1:%d%s", s.Name, u, port, path)
	}
}

func TestImagesAndBuild(t *testing.T) {
	p := loadProject(t, nil, demoProfile)
	tollgate := service(t, p, tollgateService)
	b := tollgate.Build
	if b == nil {
		t.Fatal("tollgate has no build section")
	}
	if b.Context != repoDir(t) {
		t.Errorf("tollgate build context = %s, want the repository root %s", b.Context, repoDir(t))
	}
	if b.Dockerfile != dockerfilePath {
		t.Errorf("tollgate dockerfile = %q, want %q", b.Dockerfile, dockerfilePath)
	}

	// The fake provider runs the harness binary from the same image.
	fake := service(t, p, fakeProviderService)
	if fake.Image != tollgate.Image || fake.Build == nil || fake.Build.Dockerfile != b.Dockerfile {
		t.Errorf("fake-provider image/build = %q/%+v, want tollgate's %q/%s", fake.Image, fake.Build, tollgate.Image, b.Dockerfile)
	}
	if ep := []string(fake.Entrypoint); !slices.Equal(ep, []string{envoytestBinary}) {
		t.Errorf("fake-provider entrypoint = %q, want [%s]", ep, envoytestBinary)
	}
	if len(fake.Command) == 0 || fake.Command[0] != "fake-provider" {
		t.Errorf("fake-provider command = %q, want fake-provider --addr :PORT", fake.Command)
	}
}

// TestDemoProviderKeyIsShared checks that tollgate (which sends the key) and
// the fake provider (which checks it) read the same variable with the same
// default.
func TestDemoProviderKeyIsShared(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, demoKeyDefault},
		{map[string]string{demoKeyVar: "other-key"}, "other-key"},
	} {
		p := loadProject(t, tc.env, demoProfile)
		for _, name := range []string{tollgateService, fakeProviderService} {
			v := service(t, p, name).Environment[demoKeyVar]
			if v == nil {
				t.Errorf("env %v: %s does not set %s", tc.env, name, demoKeyVar)
			} else if *v != tc.want {
				t.Errorf("env %v: %s %s = %q, want %q", tc.env, name, demoKeyVar, *v, tc.want)
			}
		}
	}
}

// TestPolicyPath checks TOLLGATE_POLICY: empty by default (the embedded
// policy), and when a user sets it, a path inside a directory mounted into the
// tollgate container, naming a file that exists on the host.
func TestPolicyPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"default is the embedded policy", nil, ""},
		{"the example policy", map[string]string{policyVar: "/etc/tollgate/policy.example.yaml"}, "/etc/tollgate/policy.example.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tollgate := service(t, loadProject(t, tc.env), tollgateService)
			v := tollgate.Environment[policyVar]
			if v == nil {
				t.Fatalf("tollgate does not pass %s through", policyVar)
			}
			if *v != tc.want {
				t.Fatalf("%s = %q, want %q", policyVar, *v, tc.want)
			}
			if *v == "" {
				return
			}
			host, err := hostPath(tollgate, *v)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(host); err != nil {
				t.Errorf("%s=%s is %s on the host: %v", policyVar, *v, host, err)
			}
		})
	}
}

// hostPath maps a path inside the container to the host file a bind mount
// provides for it.
func hostPath(s types.ServiceConfig, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%q is not an absolute container path", p)
	}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		rel, ok := strings.CutPrefix(path.Clean(p), strings.TrimSuffix(v.Target, "/")+"/")
		if ok {
			return filepath.Join(v.Source, filepath.FromSlash(rel)), nil
		}
	}
	return "", fmt.Errorf("%q is not inside a directory mounted into %s", p, s.Name)
}

// TestDockerfile checks the properties compose and the contract rely on: a
// static build of both binaries, installed where the compose file runs them,
// in a final stage that runs as a non-root user and exposes the service ports.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoDir(t), dockerfilePath))
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(string(data))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	var runs strings.Builder
	for _, in := range build.instructions {
		if in.cmd == "RUN" {
			runs.WriteString(in.args + "\n")
		}
	}
	for _, pkg := range []string{"./cmd/tollgate", "./internal/envoytest/cmd/envoytest"} {
		if !buildsStatically(runs.String(), pkg) {
			t.Errorf("the build stage does not run `CGO_ENABLED=0 go build -trimpath ... %s`", pkg)
		}
	}
	if !strings.Contains(runs.String(), "-X main.version=") {
		t.Error("the build does not stamp main.version")
	}

	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") {
		t.Errorf("final stage is FROM %s, want a distroless static image", final.from)
	}
	user := final.last("USER")
	if name, _, _ := strings.Cut(user, ":"); name == "" || name == "root" || name == "0" {
		t.Errorf("final stage USER = %q, want a non-root user", user)
	}
	var copied []string
	for _, in := range final.instructions {
		if in.cmd == "COPY" && strings.HasPrefix(in.args, "--from=") {
			copied = append(copied, in.args)
		}
	}
	for _, bin := range []string{tollgateBinary, envoytestBinary} {
		if !installs(copied, bin) {
			t.Errorf("final stage does not install %s (COPY: %q)", bin, copied)
		}
	}
	if got := strings.Fields(final.last("EXPOSE")); !slices.Contains(got, strconv.Itoa(defaultGRPCPort)) || !slices.Contains(got, strconv.Itoa(defaultAdminPort)) {
		t.Errorf("EXPOSE %v, want %d and %d", got, defaultGRPCPort, defaultAdminPort)
	}
	if got := final.last("ENTRYPOINT"); got != `["`+tollgateBinary+`"]` {
		t.Errorf("ENTRYPOINT %s, want [%q]", got, tollgateBinary)
	}
	if got := final.last("CMD"); got != `["serve"]` {
		t.Errorf(`CMD %s, want ["serve"]`, got)
	}
}

// buildsStatically reports whether one `go build` command in runs builds pkg
// with CGO_ENABLED=0 and -trimpath.
func buildsStatically(runs, pkg string) bool {
	for _, cmd := range strings.Split(runs, "&&") {
		f := strings.Fields(cmd)
		if slices.Contains(f, "CGO_ENABLED=0") && slices.Contains(f, "build") && slices.Contains(f, "-trimpath") && slices.Contains(f, pkg) {
			return true
		}
	}
	return false
}

// installs reports whether a COPY --from instruction puts a file named like
// bin's base name into bin's directory.
func installs(copies []string, bin string) bool {
	dir, base := path.Split(bin)
	for _, c := range copies {
		f := strings.Fields(c)
		if len(f) < 3 {
			continue
		}
		dest, srcs := f[len(f)-1], f[1:len(f)-1]
		for _, src := range srcs {
			if path.Base(src) != base {
				continue
			}
			if dest == bin || (strings.HasSuffix(dest, "/") && dest == dir) {
				return true
			}
		}
	}
	return false
}

type dockerInstruction struct{ cmd, args string }

type dockerStage struct {
	from         string
	instructions []dockerInstruction
}

// last returns the arguments of the stage's last instruction cmd, or "".
func (s dockerStage) last(cmd string) string {
	for i := len(s.instructions) - 1; i >= 0; i-- {
		if s.instructions[i].cmd == cmd {
			return s.instructions[i].args
		}
	}
	return ""
}

// parseDockerfile splits a Dockerfile into stages of instructions, joining
// continuation lines and dropping comments. It handles the plain syntax used by
// deploy/Dockerfile, not heredocs or parser directives.
func parseDockerfile(text string) []dockerStage {
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		cmd, args = strings.ToUpper(cmd), strings.TrimSpace(args)
		if cmd == "FROM" {
			image, _, _ := strings.Cut(args, " ")
			stages = append(stages, dockerStage{from: image})
			return
		}
		if len(stages) > 0 {
			s := &stages[len(stages)-1]
			s.instructions = append(s.instructions, dockerInstruction{cmd, strings.Join(strings.Fields(args), " ")})
		}
	}
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

// TestSpoolIsAVolume checks that the records spool lives on a named volume
// (records waiting for Redis survive a container restart) and that the image
// creates that directory for the non-root user, so the new volume is writable.
func TestSpoolIsAVolume(t *testing.T) {
	tollgate := service(t, loadProject(t, nil), tollgateService)
	v := tollgate.Environment["TOLLGATE_SPOOL_DIR"]
	if v == nil || *v == "" {
		t.Fatal("tollgate sets no TOLLGATE_SPOOL_DIR")
	}
	mounted := false
	for _, vol := range tollgate.Volumes {
		if vol.Type == types.VolumeTypeVolume && path.Clean(vol.Target) == path.Clean(*v) {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("TOLLGATE_SPOOL_DIR=%s is not a named volume's mount point", *v)
	}
	data, err := os.ReadFile(filepath.Join(repoDir(t), dockerfilePath))
	if err != nil {
		t.Fatal(err)
	}
	parent := path.Dir(path.Clean(*v)) // /var/lib/tollgate
	if !strings.Contains(string(data), "--chown=nonroot:nonroot /out"+parent+" "+parent) {
		t.Errorf("the Dockerfile does not create %s for the nonroot user", parent)
	}
}
