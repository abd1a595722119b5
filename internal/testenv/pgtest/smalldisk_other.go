//go:build !linux

package pgtest

import (
	"os"
	"testing"

	"github.com/refundhub/refundhub/internal/testenv"
)

// SmallDisk is a file system of a fixed size; Linux only (see
// smalldisk_linux.go).
type SmallDisk struct{}

// NewDatabaseOnSmallDisk skips: a small disk is mounted on Linux only.
func NewDatabaseOnSmallDisk(t testing.TB, size int64) (string, *SmallDisk) {
	return skipSmallDisk(t)
}

// NewDatabaseOnSmallDisk skips: a small disk is mounted on Linux only.
func (c *Cluster) NewDatabaseOnSmallDisk(t testing.TB, size int64) (string, *SmallDisk) {
	return skipSmallDisk(t)
}

func skipSmallDisk(t testing.TB) (string, *SmallDisk) {
	t.Helper()
	if os.Getenv(testenv.CIEnv) != "" {
		t.Fatal("a small disk is mounted on Linux only, and CI runs there")
	}
	t.Skip("a small disk is mounted on Linux only")
	return "", nil
}

// Fill is not reached: NewDatabaseOnSmallDisk skipped.
func (d *SmallDisk) Fill(testing.TB) {}

// Free is not reached: NewDatabaseOnSmallDisk skipped.
func (d *SmallDisk) Free(testing.TB) {}
