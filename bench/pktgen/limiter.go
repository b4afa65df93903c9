package pktgen

import (
	"math"
	"time"
)

// limiterWindow is how much sending time a queue may save up before it
// sends: the smallest grant is rate*limiterWindow frames (at least one, at
// most a batch). It trades smoothness against kicks: at 1 Mpps a queue
// sends batches of 50 every 50µs instead of one frame per kick; at 20 kpps
// it sends single frames.
const limiterWindow = 50 * time.Microsecond

const tokenEpsilon = 1e-6

// limiter is a token bucket with batch granularity on the monotonic clock.
// Tokens accrue at rate per second up to burst (one batch, plus one token
// so that the fraction a rounded-up wait overshoots is kept rather than
// cut off at every full-bucket grant); a caller asks
// for up to want frames and gets them only when at least minGrant tokens
// (or want, if fewer) are there, so frames leave in small bursts of at most
// one batch and the long-run rate never exceeds rate. Time is passed in
// (an offset from the run's start), so tests drive it without sleeping.
// A limiter belongs to one queue goroutine.
type limiter struct {
	rate     float64 // frames per second; 0: unlimited
	burst    float64
	minGrant float64
	tokens   float64
	last     time.Duration
}

func newLimiter(rate float64, batch int) limiter {
	if rate <= 0 {
		return limiter{}
	}
	b := float64(batch)
	return limiter{
		rate:     rate,
		burst:    b + 1,
		minGrant: math.Min(b, math.Max(1, rate*limiterWindow.Seconds())),
	}
}

// take grants up to want frames at time now. With none granted it returns
// how long until the grant would be possible.
func (l *limiter) take(now time.Duration, want int) (int, time.Duration) {
	if l.rate == 0 {
		return want, 0
	}
	if now > l.last {
		l.tokens = math.Min(l.burst, l.tokens+(now-l.last).Seconds()*l.rate)
		l.last = now
	}
	need := math.Min(l.minGrant, float64(want))
	// tokenEpsilon absorbs float rounding: a caller that waited exactly
	// the returned duration must be granted.
	if l.tokens+tokenEpsilon < need {
		return 0, time.Duration(math.Ceil((need - l.tokens) / l.rate * 1e9))
	}
	n := min(want, int(l.tokens+tokenEpsilon))
	l.tokens -= float64(n)
	return n, 0
}

// refund returns granted frames that could not be sent.
func (l *limiter) refund(n int) {
	if l.rate != 0 {
		l.tokens += float64(n)
	}
}
