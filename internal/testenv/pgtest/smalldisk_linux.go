package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
// the database's tables on a SmallDisk of size bytes. Mounting needs root:
// without it the test skips, saying so, except under CI, where it fails.
func NewDatabaseOnSmallDisk(t testing.TB, size int64) (string, *SmallDisk) {
	t.Helper()
	NewDatabase(t) // starts the shared cluster, or skips without PostgreSQL
	return shared.NewDatabaseOnSmallDisk(t, size)
}

// NewDatabaseOnSmallDisk creates a database on c whose tables live on a
// SmallDisk of size bytes, and returns its URL and the disk. The database,
// its tablespace and the mount go when t ends.
func (c *Cluster) NewDatabaseOnSmallDisk(t testing.TB, size int64) (string, *SmallDisk) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv(testenv.CIEnv) != "" {
			t.Fatalf("a small disk needs root to mount a tmpfs, and %s is set: .ci/run runs as root", testenv.CIEnv)
		}
		t.Skip("a small disk needs root to mount a tmpfs; run as root to run this test")
	}
	// Not under t.TempDir, whose parent only root may enter: the server
	// runs as another user (credential).
	dir, err := os.MkdirTemp("", "pgtest-disk-")
	if err != nil {
		t.Fatal(err)
	}
	d := &SmallDisk{dir: dir}
	if err := unix.Mount("tmpfs", d.dir, "tmpfs", 0, "mode=0755,size="+strconv.FormatInt(size, 10)); err != nil {
		_ = os.Remove(dir)
		t.Fatalf("pgtest: mount a tmpfs of %d bytes on %s: %v", size, d.dir, err)
	}
	t.Cleanup(func() {
		// Detached: the server may hold the tablespace's files a moment
		// longer when the test failed.
		if err := unix.Unmount(d.dir, unix.MNT_DETACH); err != nil {
			t.Errorf("pgtest: unmount %s: %v", d.dir, err)
		}
		_ = os.Remove(d.dir)
	})
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
	d.filler = filepath.Join(d.dir, "filler")
	return c.url(name), d
}

// Fill takes every byte the disk has left: from then on, a table or index
// that must grow fails with PostgreSQL's disk_full (53100), while rows fit
// in the pages the tables have.
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
