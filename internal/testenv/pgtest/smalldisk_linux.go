package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/refundhub/refundhub/internal/testenv"
)

// SmallDisk is a file system of its own (a tmpfs of a fixed size) that a
// database keeps its tables on, through a tablespace: Fill takes every
// byte it has left, as a disk that fills up, and Free gives them back.
// The cluster's WAL stays on the data directory's disk.
type SmallDisk struct {
	dir    string // the mount point
	filler string
}

// NewDatabaseOnSmallDisk is NewDatabase on the test binary's cluster, with
// the database's tables on a SmallDisk of size bytes. Mounting needs root,
// or sudo without a password: without either the test skips, saying so,
// except under CI, where it fails.
func NewDatabaseOnSmallDisk(t testing.TB, size int64) (string, *SmallDisk) {
	t.Helper()
	d := mountSmallDisk(t, size)
	NewDatabase(t) // starts the shared cluster, or skips without PostgreSQL
	return shared.newDatabaseOn(t, d)
}

// NewDatabaseOnSmallDisk creates a database on c whose tables live on a
// SmallDisk of size bytes, and returns its URL and the disk. The database,
// its tablespace and the mount go when t ends.
func (c *Cluster) NewDatabaseOnSmallDisk(t testing.TB, size int64) (string, *SmallDisk) {
	t.Helper()
	return c.newDatabaseOn(t, mountSmallDisk(t, size))
}

// diskPrefix names the mount points, with the test binary's pid: a mount
// left by a binary that died (a timeout, a kill) is unmounted by the next.
const diskPrefix = "pgtest-disk-"

// mountSmallDisk mounts a tmpfs of size bytes that anyone may write (the
// server runs as another user when this process is root: credential), and
// unmounts it when t ends.
func mountSmallDisk(t testing.TB, size int64) *SmallDisk {
	t.Helper()
	unmountStale()
	// Not under t.TempDir, whose parent only its owner may enter.
	dir, err := os.MkdirTemp("", diskPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := asRoot("mount", "-t", "tmpfs", "-o", "mode=1777,size="+strconv.FormatInt(size, 10), "tmpfs", dir); err != nil {
		_ = os.Remove(dir)
		if os.Getenv(testenv.CIEnv) != "" {
			t.Fatalf("pgtest: mount a tmpfs of %d bytes, and %s is set: CI must be able to (root, or sudo without a password): %v", size, testenv.CIEnv, err)
		}
		t.Skipf("a small disk needs to mount a tmpfs (root, or sudo without a password): %v", err)
	}
	t.Cleanup(func() {
		// Lazily: the server may hold the tablespace's files a moment
		// longer when the test failed.
		if err := asRoot("umount", "-l", dir); err != nil {
			t.Errorf("pgtest: unmount %s: %v", dir, err)
		}
		_ = os.Remove(dir)
	})
	return &SmallDisk{dir: dir, filler: filepath.Join(dir, "filler")}
}

// asRoot runs a command as root: directly when this process is, else
// through sudo, which must not ask for a password.
func asRoot(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if os.Geteuid() != 0 {
		cmd = exec.Command("sudo", append([]string{"-n", name}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// unmountStale unmounts the small disks of test binaries that are gone.
func unmountStale() {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := fields[4]
		rest, ok := strings.CutPrefix(filepath.Base(mp), diskPrefix)
		if !ok || filepath.Dir(mp) != filepath.Clean(os.TempDir()) {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || !errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			continue
		}
		if asRoot("umount", "-l", mp) == nil {
			_ = os.Remove(mp)
		}
	}
}

// newDatabaseOn creates a tablespace on d and a database in it.
func (c *Cluster) newDatabaseOn(t testing.TB, d *SmallDisk) (string, *SmallDisk) {
	t.Helper()
	ts := filepath.Join(d.dir, "tablespace")
	if err := os.Mkdir(ts, 0o700); err != nil {
		t.Fatal(err)
	}
	if c.cred != nil {
		if err := os.Chown(ts, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	name := fmt.Sprintf("t%d_%s", c.dbs.Add(1), dbName(t.Name()))
	ctx := context.Background()
	if _, err := c.admin.ExecContext(ctx, `CREATE TABLESPACE "`+name+`" LOCATION '`+ts+`'`); err != nil {
		t.Fatalf("pgtest: create tablespace on %s: %v", ts, err)
	}
	t.Cleanup(func() {
		if c.admin == nil {
			return
		}
		if _, err := c.admin.ExecContext(ctx, `DROP TABLESPACE "`+name+`"`); err != nil {
			t.Errorf("pgtest: drop tablespace %s: %v", name, err)
		}
	})
	if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE "`+name+`" TABLESPACE "`+name+`"`); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if c.admin == nil {
			return
		}
		if _, err := c.admin.ExecContext(ctx, `DROP DATABASE "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.url(name), d
}

// Fill takes every byte the disk has left: from then on, a table or index
// that must grow fails with PostgreSQL's disk_full (53100), while rows that
// fit in the pages a table has still go in.
func (d *SmallDisk) Fill(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(d.filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for _, chunk := range []int{64 << 10, 4 << 10, 1} {
		for {
			if _, err := f.Write(buf[:chunk]); err != nil {
				if !errors.Is(err, unix.ENOSPC) {
					t.Fatalf("pgtest: fill %s: %v", d.dir, err)
				}
				break
			}
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.dir, &st); err != nil || st.Bavail != 0 {
		t.Fatalf("pgtest: %s after filling it: %d blocks free, %v; want none", d.dir, st.Bavail, err)
	}
}

// Free gives the disk back what Fill took.
func (d *SmallDisk) Free(t testing.TB) {
	t.Helper()
	if err := os.Remove(d.filler); err != nil {
		t.Fatalf("pgtest: free %s: %v", d.dir, err)
	}
}
