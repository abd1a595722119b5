package casework

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/refundhub/refundhub/internal/casestore"
)

// ProcessOwner names this worker process in case leases, for
// refundflow.EngineConfig.Owner: worker@<host>/<pid namespace>/<pid>/<random>.
// The host, PID namespace and PID let a worker starting on the same host
// tell a dead process's leases from a live one's (takeOverDeadLeases, when
// Run starts); the random part keeps a reused PID from passing for the same
// process.
func ProcessOwner() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" || strings.ContainsAny(host, "/ ") {
		host = "unknown"
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lease owner id: %w", err)
	}
	return fmt.Sprintf("worker@%s/%s/%d/%s", host, pidNamespace(), os.Getpid(), hex.EncodeToString(b[:])), nil
}

// pidNamespace identifies this process's PID namespace ("-" when it cannot
// be read): a PID means the same process only within one namespace (two
// containers on one host share a hostname view but not their PIDs).
func pidNamespace() string {
	link, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return "-"
	}
	if _, n, ok := strings.Cut(link, "["); ok {
		return strings.TrimSuffix(n, "]")
	}
	return "-"
}

// deadOwner reports whether owner names a worker process of this host and
// PID namespace that no longer runs. Anything it cannot be sure of (another
// host or namespace, an unknown format, a PID that answers) counts as alive:
// its leases then simply expire after WORKER_LEASE_TTL.
func deadOwner(owner, self string) bool {
	host, ns, pid, ok := parseOwner(owner)
	selfHost, selfNS, selfPID, sok := parseOwner(self)
	if !ok || !sok || host != selfHost || ns != selfNS || ns == "-" || pid == selfPID || pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

// parseOwner splits an owner id made by ProcessOwner; ok is false for any
// other form.
func parseOwner(owner string) (host, ns string, pid int, ok bool) {
	rest, found := strings.CutPrefix(owner, "worker@")
	if !found {
		return "", "", 0, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 {
		return "", "", 0, false
	}
	pid, err := strconv.Atoi(parts[2])
	if err != nil {
		return "", "", 0, false
	}
	return parts[0], parts[1], pid, true
}

// takeOverDeadLeases ends at once the leases held by worker processes of
// this host that are gone (killed, crashed), instead of leaving their cases
// stuck until the leases expire: a restarted worker resumes them within
// seconds. Their open intents are settled as after any crash: the platform
// is asked first, after the in-flight window of the cut-off attempt.
func takeOverDeadLeases(ctx context.Context, store *casestore.Store, self string, log *slog.Logger) error {
	owners, err := store.LeaseOwners(ctx)
	if err != nil {
		return err
	}
	for _, o := range owners {
		if !deadOwner(o, self) {
			continue
		}
		n, err := store.ReleaseLeasesOf(ctx, o)
		if err != nil {
			return err
		}
		log.Info("took over the case leases of a worker process that is gone", "owner", o, "cases", n)
	}
	return nil
}
