package lambda

import "time"

// Invocation is one execution of a handler, as Config.Observer sees it (the local cloud's timeline).
type Invocation struct {
	Function  string
	RequestID string // an asynchronous event keeps its request id across retries
	Start     time.Time
	End       time.Time // when the invocation ended for its caller (at the timeout for one that timed out)
	Payload   []byte    // the event; valid only during the call
	ErrorType string    // "" on success; "Sandbox.Timedout" for a timeout
}
