package owned

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestStores: each helper stores or adds what it says, and a reader that
// loads the words atomically while they are written sees whole values
// only, with no report from the race detector (go test -race, as in make
// test).
func TestStores(t *testing.T) {
	var (
		u32 atomic.Uint32
		u64 atomic.Uint64
		i64 atomic.Int64
		mu  sync.Mutex
	)
	const n = 20000
	var wg sync.WaitGroup
	stop, readerDone := make(chan struct{}), make(chan struct{})
	go func() { // the lock-free reader
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if v := u64.Load(); v != 0 && v>>32 != v&0xffffffff {
				t.Errorf("torn read %#x", v)
				return
			}
			_, _ = u32.Load(), i64.Load()
		}
	}()
	for w := range 2 { // writers serialised by mu
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				mu.Lock()
				v := uint64(w*n + i + 1)
				Set64(&u64, v<<32|v)
				Set32(&u32, uint32(v))
				AddI64(&i64, 1)
				mu.Unlock()
			}
		}()
	}
	var c atomic.Uint64
	for range n {
		mu.Lock()
		Add64(&c, 2)
		mu.Unlock()
	}
	wg.Wait()
	close(stop)
	<-readerDone
	if got := i64.Load(); got != 2*n {
		t.Errorf("AddI64: %d, want %d", got, 2*n)
	}
	if got := c.Load(); got != 2*n {
		t.Errorf("Add64: %d, want %d", got, 2*n)
	}
	SetI64(&i64, -5)
	if got := i64.Load(); got != -5 {
		t.Errorf("SetI64: %d", got)
	}
	if v := u64.Load(); v>>32 != v&0xffffffff || uint64(u32.Load()) != v&0xffffffff {
		t.Errorf("last stores: u64 %#x, u32 %#x", v, u32.Load())
	}
}
