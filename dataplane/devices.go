package dataplane

// DeviceStatus is one device in use (or refused), for inspect.
type DeviceStatus struct {
	Ifindex int    `json:"ifindex"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	// Mode is the classifier's attach mode ("native", "generic"), or
	// "tx-only" for a bridge (frames are sent on it; its ports receive).
	Mode string `json:"mode,omitempty"`
	// Queues is the number of sockets.
	Queues int `json:"queues"`
	// Why: "--interfaces", "route to 198.19.20.11 and 3 more endpoints",
	// "port of bridge cni0".
	Why string `json:"why"`
	// Error says why a followed device is not used.
	Error string `json:"error,omitempty"`
}
