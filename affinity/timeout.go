package affinity

import "fmt"

// Session affinity timeouts, in seconds, as the Kubernetes API defines them
// (k8s.io/api core/v1 DefaultClientIPServiceAffinitySeconds and
// pkg/apis/core MaxClientIPServiceAffinitySeconds).
const (
	// DefaultTimeoutSeconds is the API server's default timeoutSeconds for
	// sessionAffinity: ClientIP (3 hours).
	DefaultTimeoutSeconds = 10800
	// MinTimeoutSeconds is the smallest valid timeoutSeconds; 0 (no
	// expiry) is rejected by the API server.
	MinTimeoutSeconds = 1
	// MaxTimeoutSeconds is the largest valid timeoutSeconds (1 day),
	// inclusive.
	MaxTimeoutSeconds = 86400
)

// ValidateTimeoutSeconds reports whether v is a valid
// sessionAffinityConfig.clientIP.timeoutSeconds, with the API server's rule
// (validateAffinityTimeout: v <= 0 || v > 86400 is invalid) and message.
func ValidateTimeoutSeconds(v int32) error {
	if v < MinTimeoutSeconds || v > MaxTimeoutSeconds {
		return fmt.Errorf("timeoutSeconds: Invalid value: %d: %w", v, ErrInvalidTimeout)
	}
	return nil
}

// validTimeout is ValidateTimeoutSeconds for the unsigned values the table
// API takes, without building an error.
func validTimeout(v uint32) bool {
	return v >= MinTimeoutSeconds && v <= MaxTimeoutSeconds
}
