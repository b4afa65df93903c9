package statefile

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Open maps the state file at path for a table described by s, adopting
// the existing contents when the header matches (see the package comment),
// else starting from zeroed memory. The directory is created (0700) if
// missing.
func Open(path string, s Spec) (*File, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	boot, err := bootID()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	defer unix.Close(fd) // the mapping keeps the file
	total := HeaderSize + s.Size
	f := &File{Path: path, Seed: s.Seed}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat state file %s: %w", path, err)
	}
	switch {
	case st.Size == 0:
	case st.Size != int64(total):
		f.Discarded = fmt.Errorf("%w: file is %d bytes, want %d (sizes differ)", ErrIncompatible, st.Size, total)
	default:
		page := make([]byte, HeaderSize)
		if _, err := unix.Pread(fd, page, 0); err != nil {
			return nil, fmt.Errorf("read state file %s: %w", path, err)
		}
		var h header
		if h, f.Discarded = decode(page, s, boot); f.Discarded == nil {
			f.Adopted, f.Seed = true, h.seed
		}
	}
	if !f.Adopted {
		// Start over: truncating to 0 frees the old pages, so the data
		// is zero (the empty state of both tables).
		if err := unix.Ftruncate(fd, 0); err != nil {
			return nil, fmt.Errorf("truncate state file %s: %w", path, err)
		}
		if err := unix.Ftruncate(fd, int64(total)); err != nil {
			return nil, fmt.Errorf("size state file %s: %w", path, err)
		}
		for f.Seed == 0 {
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return nil, fmt.Errorf("state file seed: %w", err)
			}
			f.Seed = binary.LittleEndian.Uint64(b[:])
		}
		h := header{kind: s.Kind, version: s.Version, boot: boot, seed: f.Seed, size: uint64(s.Size), params: s.Params}
		page := make([]byte, HeaderSize)
		h.encode(page)
		if _, err := unix.Pwrite(fd, page, 0); err != nil {
			return nil, fmt.Errorf("write state file %s: %w", path, err)
		}
	}
	// MAP_POPULATE faults every page in now rather than on the packet
	// path; on tmpfs that allocates the pages the table will use.
	mem, err := unix.Mmap(fd, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("map state file %s (%d bytes): %w", path, total, err)
	}
	f.Data = mem[HeaderSize:total:total]
	f.unmap = func() error { return unix.Munmap(mem) }
	return f, nil
}

// bootID returns the kernel's boot ID (a random UUID per boot).
func bootID() ([16]byte, error) {
	var id [16]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id, fmt.Errorf("boot id: %w", err)
	}
	h := bytes.ReplaceAll(bytes.TrimSpace(b), []byte("-"), nil)
	if n, err := hex.Decode(id[:], h); err != nil || n != 16 {
		return id, fmt.Errorf("boot id %q: %w", b, errors.Join(err, errors.New("not a UUID")))
	}
	return id, nil
}

// Now returns CLOCK_MONOTONIC in nanoseconds: time since boot (without
// suspend), the same for every process on this boot, so times stored by
// one process mean the same to the next. It costs one vDSO read (Go's
// time.Now) after the first call: the offset between the process's
// monotonic clock and CLOCK_MONOTONIC is measured once.
func Now() int64 { return monoBase + int64(time.Since(monoStart)) }

var monoStart, monoBase = func() (time.Time, int64) {
	var ts unix.Timespec
	start := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return start, 0
	}
	return start, ts.Nano()
}()

// Lock takes the state directory dir for this process (flock(2) on
// dir/lock, created 0600), waiting up to wait for a previous xdpgate that
// is still shutting down: two processes mapping the same tables would
// each rebuild its own index over shared records. The lock ends with the
// process (also when it is killed); the returned function releases it
// earlier.
func Lock(dir string, wait time.Duration) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	path := filepath.Join(dir, "lock")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir lock %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			unix.Close(fd)
			return nil, fmt.Errorf("state dir %s: %w (another xdpgate uses it)", dir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
