package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/envconfig"
)

// config is everything devstack reads from flags and the environment.
type config struct {
	DataDir      string
	NATSHost     string
	NATSPort     int
	SandboxAddr  string
	ReceiverAddr string
	MetricsAddr  string
	ConsoleAddr  string
	GoCommand    string
	Components   []string
	ReadyTimeout time.Duration
}

// allComponents are the product's commands, in start order. A component whose
// cmd/ directory does not exist yet is skipped with a note. The console comes
// after the worker: it waits for the case store the worker creates.
var allComponents = []string{"sandbox", "receiver", "worker", "console"}

// envVars documents every variable devstack reads itself; the table drives
// both -h and loading. Each has a flag (flagFor) that wins over it. The four
// addresses are the components' own variables: devstack waits on them and
// hands the components the same values. Every other variable in devstack's
// environment reaches the components unread (see childEnv).
var envVars = []envconfig.Var{
	envconfig.V("DEVSTACK_DATA", "data", "data directory: the JetStream store, the case database, the built binaries, voucher images, the development secrets (devstack.env) and refundctl.env"),
	envconfig.V("DEVSTACK_NATS_PORT", "4222", "port of the embedded NATS server (0 to 65535)"),
	envconfig.V("SANDBOX_ADDR", "127.0.0.1:8090", "the sandbox's listen address (host:port), given to the sandbox; the worker's UPSTREAM_BASE_URL points at it"),
	envconfig.V("RECEIVER_ADDR", "127.0.0.1:8080", "the receiver's listen address (host:port), given to the receiver; the sandbox's CALLBACK_URL and refundctl.env's RECEIVER_URL point at it"),
	envconfig.V("WORKER_METRICS_ADDR", "127.0.0.1:9090", "the worker's /healthz and /metrics address (host:port), given to the worker"),
	envconfig.V("CONSOLE_ADDR", "127.0.0.1:8070", "the console's listen address (host:port), given to the console; devstack prints its URL and the development login (account dev, its password and an API token)"),
	envconfig.V("GO", "go", "the go command that builds the components and refundctl"),
}

// flagFor names the flag of each variable in envVars. A flag given on the
// command line wins over its variable.
var flagFor = map[string]string{
	"DEVSTACK_DATA":       "data",
	"DEVSTACK_NATS_PORT":  "nats-port",
	"SANDBOX_ADDR":        "sandbox-addr",
	"RECEIVER_ADDR":       "receiver-addr",
	"WORKER_METRICS_ADDR": "worker-metrics-addr",
	"CONSOLE_ADDR":        "console-addr",
	"GO":                  "go",
}

// parseConfig reads the flags, then for every setting whose flag was not
// given, its variable through getenv (the flags show the documented
// defaults, never an environment value). Every problem is reported at once,
// each naming the flag or the variable it came from. After -h it returns
// flag.ErrHelp, the usage printed to stderr.
func parseConfig(args []string, getenv func(string) string, stderr out) (config, error) {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, v := range envVars {
		fs.String(flagFor[v.Name], v.Default, "sets "+v.Name+" (below)")
	}
	var c config
	var comps, ready string
	fs.StringVar(&c.NATSHost, "nats-host", "127.0.0.1", "NATS listen host")
	fs.StringVar(&comps, "components", strings.Join(allComponents, ","), "components to run")
	fs.StringVar(&ready, "ready-timeout", "120s", "how long to wait for each component to become ready")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./cmd/devstack [flags]\n\n"+
			"Runs NATS (embedded, JetStream), the platform sandbox, the receiver, the worker and the console locally.\n"+
			"Development secrets are generated once into <data>/devstack.env and reused.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nA flag wins over its variable. Any other variable set in devstack's environment reaches\n"+
			"the components unchanged (e.g. SANDBOX_SELLER_DECISION=refuse); see docs/operations.md.\n\n")
		envconfig.Usage(stderr, envVars)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return config{}, err
	}

	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	env := envconfig.NewReader(envVars, getenv)
	cmdline := envconfig.NewReader(nil, func(name string) string { return fs.Lookup(strings.TrimPrefix(name, "-")).Value.String() })
	// from gives the reader and the name of a setting: its flag when given
	// (errors then say -nats-port), else its variable.
	from := func(name string) (*envconfig.Reader, string) {
		if f := flagFor[name]; given[f] {
			return cmdline, "-" + f
		}
		return env, name
	}
	address := func(name string) string {
		r, n := from(name)
		a := r.String(n)
		if _, _, err := net.SplitHostPort(a); err != nil {
			r.Fail(fmt.Errorf("%s=%q: want host:port (%w)", n, a, err))
		}
		return a
	}

	r, n := from("DEVSTACK_DATA")
	c.DataDir = r.String(n)
	r, n = from("DEVSTACK_NATS_PORT")
	c.NATSPort = r.Int(n, 0, 65535)
	c.SandboxAddr = address("SANDBOX_ADDR")
	c.ReceiverAddr = address("RECEIVER_ADDR")
	c.MetricsAddr = address("WORKER_METRICS_ADDR")
	c.ConsoleAddr = address("CONSOLE_ADDR")
	r, n = from("GO")
	c.GoCommand = r.String(n)

	c.ReadyTimeout = cmdline.Duration("-ready-timeout", time.Millisecond, 24*time.Hour)
	for _, name := range strings.Split(comps, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(allComponents, name) {
			cmdline.Fail(fmt.Errorf("-components: unknown component %q (known: %s)", name, strings.Join(allComponents, ", ")))
		}
		c.Components = append(c.Components, name)
	}
	if err := errors.Join(env.Err(), cmdline.Err()); err != nil {
		return config{}, err
	}
	return c, nil
}

// getenvFrom answers like os.Getenv from an environment list. The last entry
// of a name wins, as it does for the processes started with that list.
func getenvFrom(environ []string) func(string) string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(name string) string { return m[name] }
}

// childEnv is the environment of the processes devstack starts: its own
// environment, then each of the wiring defaults it leaves unset or blank (a
// variable the user set wins: SANDBOX_SELLER_DECISION=refuse, or another
// SANDBOX_PUSH_RETRY_INTERVAL), then the settings devstack resolved itself
// from its flags and variables (the addresses it waits on), which always
// win. Each name appears once.
func childEnv(environ []string, defaults, resolved map[string]string) []string {
	getenv := getenvFrom(environ)
	set := make(map[string]string, len(defaults)+len(resolved))
	for k, v := range defaults {
		if getenv(k) == "" {
			set[k] = v
		}
	}
	maps.Copy(set, resolved)
	out := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		out = append(out, k+"="+set[k])
	}
	return out
}
