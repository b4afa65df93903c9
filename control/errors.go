package control

import (
	"errors"
	"fmt"
)

// Sentinel errors. Build errors wrap ErrInvalid, ErrConflict or
// ErrNodeAddress inside an *ObjectError that names the object and the field.
var (
	// ErrInvalid: a field of a Service, EndpointSlice or Node cannot be
	// used (unparsable address, port out of range, timeout out of range).
	ErrInvalid = errors.New("invalid value")
	// ErrConflict: two service ports claim the same frontend or NodePort;
	// the older Service keeps it.
	ErrConflict = errors.New("conflict")
	// ErrNodeAddress: an externalIP or LoadBalancer IP is an address of
	// this node; it is not served (it would shadow the node's own port).
	ErrNodeAddress = errors.New("node address refused")
	// ErrManifest: a manifest file cannot be decoded; the last good state
	// is kept.
	ErrManifest = errors.New("invalid manifest")
	// ErrAlreadyRunning: Run was called twice on one Controller.
	ErrAlreadyRunning = errors.New("controller already running")
)

// ObjectError is a problem with one field of one Kubernetes object. The
// object (or the part of it the field belongs to) is skipped; everything else
// keeps working.
type ObjectError struct {
	// Kind is "Service", "EndpointSlice" or "Node".
	Kind string
	// Namespace and Name identify the object (Namespace empty for a Node).
	Namespace, Name string
	// Field is the JSON path of the offending field, e.g. "spec.ports[1].port".
	Field string
	// Err wraps ErrInvalid, ErrConflict or ErrNodeAddress with the detail.
	Err error
}

// Error returns "Service ns/name: spec.ports[1].port: invalid value: ...".
func (e *ObjectError) Error() string {
	obj := e.Name
	if e.Namespace != "" {
		obj = e.Namespace + "/" + e.Name
	}
	if e.Field == "" {
		return fmt.Sprintf("%s %s: %v", e.Kind, obj, e.Err)
	}
	return fmt.Sprintf("%s %s: %s: %v", e.Kind, obj, e.Field, e.Err)
}

// Unwrap returns the wrapped error.
func (e *ObjectError) Unwrap() error { return e.Err }

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
