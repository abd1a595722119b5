// Package pgtest runs a throwaway PostgreSQL cluster for tests: one cluster
// per test binary, started at the first NewDatabase and stopped by Main, and
// a fresh database for every test that asks.
//
// The cluster is initdb's, in a temp directory, listening on 127.0.0.1 on a
// free port with its unix socket in that directory; durability is off
// (fsync, synchronous_commit) since it is thrown away. The server is run
// directly rather than through pg_ctl, which would detach it: as a child of
// the test binary with a parent-death signal, it goes with the binary even
// when a test panics or the binary is killed, so no postgres outlives a run.
//
// initdb refuses to run as root. Run as root (CI containers), the cluster
// runs as the unprivileged user nobody: its directory is chowned to it and
// initdb and postgres start with its uid and gid.
//
// Without PostgreSQL's binaries (PATH, then /usr/lib/postgresql/*/bin) a
// test skips with one line naming initdb, or fails under REFUNDHUB_CI.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/refundhub/refundhub/internal/testenv"
)

// install says how to get the binaries, in skip and failure messages.
const install = "apt-get install postgresql"

// Options shape a cluster.
type Options struct {
	// Durable keeps fsync and synchronous_commit on, as in production:
	// for measurements, not for tests.
	Durable bool
	// Statements loads pg_stat_statements, for a benchmark that prints
	// what the server ran (CREATE EXTENSION in its database first).
	Statements bool
}

// Cluster is a running throwaway cluster.
type Cluster struct {
	dir      string
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan error
	logPath  string // the server's output
	postgres string // the server binary, its user and options: Restart runs it again
	cred     *syscall.Credential
	opts     Options
	admin    *sql.DB
	dbs      atomic.Int64
	stopOnce sync.Once
}

var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
)

// errMissing: PostgreSQL is not installed here.
var errMissing = errors.New("initdb not found")

// Main runs the package's tests (m.Run) and then stops the shared cluster if
// a test started one; it returns m.Run's code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop cluster: %v\n", err)
		}
	}
	return code
}

// NewDatabase returns the URL of a new, empty database on the test binary's
// cluster (started at the first call), dropped when the test ends. The URL
// carries a password, as DB_URL does in production.
func NewDatabase(t testing.TB) string {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = start(Options{}) })
	if errors.Is(sharedErr, errMissing) {
		testenv.Missing(t, "initdb", install)
	}
	if sharedErr != nil {
		t.Fatalf("pgtest: %v", sharedErr)
	}
	return shared.NewDatabase(t)
}

// Start starts a cluster of its own for t, stopped when t ends: for
// measurements with other Options than the shared cluster's.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	c, err := start(o)
	if errors.Is(err, errMissing) {
		testenv.Missing(t, "initdb", install)
	}
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgtest: stop cluster: %v", err)
		}
	})
	return c
}

// NewDatabase creates a database on c and returns its URL; it is dropped
// when t ends.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", c.dbs.Add(1), dbName(t.Name()))
	ctx := context.Background()
	if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if c.admin == nil { // a Restart that failed, and said so
			return
		}
		// FORCE: connections a failed test left open must not keep it.
		if _, err := c.admin.ExecContext(ctx, `DROP DATABASE "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.url(name)
}

// EndSessions ends every session on c's databases (not the admin's, on
// "postgres"), as a restart, an administrator's pg_terminate_backend or a
// pooler cutting connections does, waiting until each has ended, and
// returns how many. The server stays up: clients find their connections
// dead on their next statement.
func (c *Cluster) EndSessions(t testing.TB) int {
	t.Helper()
	var n int
	// The subquery keeps the planner from running pg_terminate_backend
	// before the other conditions (it orders them by cost).
	if err := c.admin.QueryRowContext(context.Background(), `SELECT count(*) FROM (SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND datname <> 'postgres' OFFSET 0) others
		WHERE pg_terminate_backend(pid, 10000)`).Scan(&n); err != nil {
		t.Fatalf("pgtest: end sessions: %v", err)
	}
	return n
}

// url is the TCP URL of database name, with the cluster's password.
func (c *Cluster) url(name string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", c.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)), Path: "/" + name, RawQuery: "sslmode=disable"}
	return u.String()
}

// dbName keeps the letters and digits of a test name, lower-cased, short
// enough for PostgreSQL's 63-byte identifiers.
func dbName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}

// Stop shuts the server down (fast shutdown: open sessions are ended) and
// removes its directory.
func (c *Cluster) Stop() error {
	var err error
	c.stopOnce.Do(func() {
		if c.admin != nil {
			_ = c.admin.Close()
		}
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
			err = errors.New("postgres did not stop within 30s; killed")
		}
		err = errors.Join(err, os.RemoveAll(c.dir))
	})
	return err
}

// Crash stops the server the way a crash does: an immediate shutdown
// (SIGQUIT), which ends every backend at once, with no checkpoint, so that
// the next start recovers from the WAL. Open connections break; new ones are
// refused until Restart. Only commits the server acknowledged survive, and
// then only with synchronous_commit on (Options.Durable), as in production.
func (c *Cluster) Crash(t testing.TB) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case err := <-c.exited:
		c.exited <- err // for Stop
	case <-time.After(30 * time.Second):
		c.kill()
		t.Fatalf("pgtest: postgres did not exit within 30s of SIGQUIT; killed")
	}
}

// Restart starts the server again after Crash, on the same port and data,
// and waits until it accepts connections (crash recovery done).
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	if err := c.serve(c.port); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

// StartStandby starts a hot standby of c, a copy streaming c's WAL
// (pg_basebackup -R), on a port of its own, stopped when t ends: with
// Crash on c and Promote on it, a failover. It takes no writes until
// promoted.
func (c *Cluster) StartStandby(t testing.TB) *Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "refundhub-pg-standby-")
	if err != nil {
		t.Fatal(err)
	}
	cred, err := credential(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatal(err)
	}
	s := &Cluster{dir: dir, password: c.password, exited: make(chan error, 1), logPath: filepath.Join(dir, "postgres.log"),
		postgres: c.postgres, cred: cred, opts: c.opts}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s", c.port, c.password)
	cmd := exec.Command(filepath.Join(filepath.Dir(c.postgres), "pg_basebackup"), "-D", filepath.Join(dir, "data"),
		"-d", conninfo, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
	cmd.Dir = dir
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("pgtest: pg_basebackup: %v\n%s", err, out)
	}
	for range 3 { // a free port can be taken before the server binds it
		var port int
		if port, err = freePort(); err == nil {
			if err = s.serve(port); err == nil {
				break
			}
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("pgtest: standby: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("pgtest: stop standby: %v", err)
		}
	})
	return s
}

// Promote makes a standby a primary (pg_promote, which waits for it).
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	var ok bool
	if err := c.admin.QueryRow(`SELECT pg_promote()`).Scan(&ok); err != nil || !ok {
		t.Fatalf("pgtest: promote: %v (promoted: %v)\n%s", err, ok, c.serverLog())
	}
}

// Addr is the server's host:port.
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// binaries finds initdb and postgres: on PATH, else in the newest
// /usr/lib/postgresql/*/bin (Debian's packages put them only there).
func binaries() (initdb, postgres string, err error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		pg := filepath.Join(filepath.Dir(p), "postgres")
		if _, err := os.Stat(pg); err == nil {
			return p, pg, nil
		}
		if pg, err := exec.LookPath("postgres"); err == nil {
			return p, pg, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if _, err := os.Stat(i); err == nil {
			if _, err := os.Stat(p); err == nil {
				return i, p, nil
			}
		}
	}
	return "", "", errMissing
}

// version is N of /usr/lib/postgresql/N/bin.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// start runs initdb and the server; errMissing without PostgreSQL.
func start(o Options) (*Cluster, error) {
	initdb, postgres, err := binaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "refundhub-pg-")
	if err != nil {
		return nil, err
	}
	cred, err := credential(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{dir: dir, password: randomHex(16), exited: make(chan error, 1), logPath: filepath.Join(dir, "postgres.log"),
		postgres: postgres, cred: cred, opts: o}
	if err := c.initdb(initdb, cred); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// A free port can be taken between our check and the server's bind:
	// try a few.
	for range 3 {
		port, perr := freePort()
		if perr != nil {
			_ = os.RemoveAll(dir)
			return nil, perr
		}
		if err = c.serve(port); err == nil {
			return c, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, err
}

// credential is the user to run PostgreSQL as: nobody when this process is
// root (initdb refuses root), with dir handed to it; nil otherwise.
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as an unprivileged user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) initdb(initdb string, cred *syscall.Credential) error {
	pwfile := filepath.Join(c.dir, "pw")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	cmd := exec.Command(initdb, "-D", filepath.Join(c.dir, "data"), "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = c.dir
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return os.Remove(pwfile)
}

// serve starts the server on port and waits until it accepts connections.
func (c *Cluster) serve(port int) error {
	c.port = port
	postgres, cred, o := c.postgres, c.cred, c.opts
	args := []string{"-D", filepath.Join(c.dir, "data"), "-p", strconv.Itoa(port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "shared_buffers=32MB"}
	if o.Statements {
		args = append(args, "-c", "shared_preload_libraries=pg_stat_statements")
	}
	if !o.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the server has its own copy of the descriptor
	cmd := exec.Command(postgres, args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"LC_ALL=C"}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = serverAttr(cred)
	c.cmd = cmd
	c.exited = make(chan error, 1)
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that started the
		// child exits, not the process: this goroutine keeps its thread
		// until the server has exited.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	admin := c.admin
	if admin == nil {
		admin, err = sql.Open("pgx", c.url("postgres"))
		if err != nil {
			c.kill()
			return err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := admin.PingContext(ctx)
		cancel()
		if err == nil {
			c.admin = admin
			return nil
		}
		select {
		case werr := <-c.exited:
			c.exited <- werr // for Stop
			_ = admin.Close()
			c.admin = nil
			return fmt.Errorf("postgres exited (%v) before accepting connections:\n%s", werr, c.serverLog())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			_ = admin.Close()
			c.admin = nil
			c.kill()
			return fmt.Errorf("postgres not ready within 30s: %v\n%s", err, c.serverLog())
		}
	}
}

func (c *Cluster) serverLog() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

func (c *Cluster) kill() {
	_ = c.cmd.Process.Kill()
	err := <-c.exited
	c.exited <- err // for Stop
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
