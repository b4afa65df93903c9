package pktgen

import (
	"math"
	"testing"
	"time"
)

// TestLimiter drives the token bucket with a simulated clock, as a greedy
// sender would: at any time the frames granted never exceed rate*t plus one
// batch (and one token), and over a long run they reach rate*t.
func TestLimiter(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		batch int
		step  time.Duration // how often the sender asks when not told to wait
	}{
		{"20kpps-batch64", 20000, 64, 10 * time.Microsecond},
		{"1Mpps-batch64", 1e6, 64, time.Microsecond},
		{"10pps-batch64", 10, 64, time.Millisecond},
		{"3Mpps-batch16", 3e6, 16, 3 * time.Microsecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(tc.rate, tc.batch)
			var now time.Duration
			var granted float64
			end := 2 * time.Second
			for now < end {
				n, wait := l.take(now, tc.batch)
				if n < 0 || n > tc.batch {
					t.Fatalf("take(%v) = %d, want 0..%d", now, n, tc.batch)
				}
				granted += float64(n)
				if limit := tc.rate*now.Seconds() + float64(tc.batch) + 1; granted > limit+1e-6 {
					t.Fatalf("at %v granted %v frames, more than rate*t+batch+1 = %v", now, granted, limit)
				}
				if n == 0 {
					if wait <= 0 {
						t.Fatalf("take(%v) = 0 with wait %v, want a positive wait", now, wait)
					}
					now += wait
					if n2, _ := l.take(now, tc.batch); n2 == 0 {
						t.Fatalf("take(%v) after waiting %v = 0, want a grant", now, wait)
					} else {
						granted += float64(n2)
					}
					continue
				}
				now += tc.step
			}
			if want := tc.rate * now.Seconds(); granted < want-math.Max(1, tc.rate*limiterWindow.Seconds())-1 {
				t.Errorf("granted %v frames in %v, want about rate*t = %v", granted, now, want)
			}
		})
	}
}

func TestLimiterUnlimited(t *testing.T) {
	l := newLimiter(0, 64)
	for _, want := range []int{1, 64, 7} {
		if n, wait := l.take(0, want); n != want || wait != 0 {
			t.Errorf("unlimited take(0, %d) = %d, %v, want %d, 0", want, n, wait, want)
		}
	}
}

// TestLimiterRefund: refunded frames are granted again without waiting.
func TestLimiterRefund(t *testing.T) {
	l := newLimiter(1000, 64)
	n, _ := l.take(time.Second, 64) // a full bucket
	if n != 64 {
		t.Fatalf("take after 1s = %d, want 64 (a batch)", n)
	}
	l.take(time.Second, 64) // the spare token
	l.refund(10)
	if n, _ := l.take(time.Second, 64); n != 10 {
		t.Errorf("take after refund(10) = %d, want 10", n)
	}
}

// TestLimiterSmallWant: a caller wanting fewer frames than the minimum
// grant (the last frames of a Count) is not starved.
func TestLimiterSmallWant(t *testing.T) {
	l := newLimiter(1e6, 64) // minGrant 50
	n, wait := l.take(0, 1)
	if n != 0 {
		t.Fatalf("take(0, 1) = %d at t=0, want 0 (empty bucket)", n)
	}
	if n, _ := l.take(wait, 1); n != 1 {
		t.Errorf("take(%v, 1) = %d, want 1", wait, n)
	}
}
