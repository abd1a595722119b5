package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDirVouchers: a voucher is a plain file name read from the voucher
// directory; a path, a hidden name or a missing file is an error that
// says why without naming the voucher again (the engine's text names it
// once: it read `voucher "a/b.png": voucher "a/b.png": …`).
func TestDirVouchers(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "box.png"), []byte("\x89PNG image"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := dirVouchers(dir)
	name, data, err := open(context.Background(), "box.png")
	if err != nil || name != "box.png" || string(data) != "\x89PNG image" {
		t.Errorf("box.png = %q, %q, %v; want its name and bytes", name, data, err)
	}
	for _, ref := range []string{"../box.png", "sub/box.png", ".box.png", "/etc/passwd"} {
		if _, _, err := open(context.Background(), ref); err == nil || !strings.Contains(err.Error(), "want a plain file name") || strings.Contains(err.Error(), ref) {
			t.Errorf("%q: %v; want refused as not a plain file name, without repeating the reference", ref, err)
		}
	}
	if _, _, err := open(context.Background(), "missing.png"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing.png: %v; want a not-exist error", err)
	}
}
