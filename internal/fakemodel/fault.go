package fakemodel

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FaultHeader is the request header that asks for a fault on that request;
// it overrides Options.Fault. Its syntax is ParseFault's.
const FaultHeader = "X-Fake-Fault"

// Fault is a misbehaviour served on demand, as ParseFault reads it. The
// counts are "not set" when negative (ParseFault("") sets them all so).
type Fault struct {
	// Status, when not zero, answers with this status and an API-shaped
	// error body instead of a model answer ("status=500").
	Status int
	// Delay is the wait before each event of a stream after the first
	// ("delay=20ms").
	Delay time.Duration
	// HeaderDelay is the wait before the response headers are sent
	// ("header-delay=2s"); the request's end cuts it short.
	HeaderDelay time.Duration
	// PauseAfter blocks after that many events until Server.Release is
	// called or the request ends ("pause-after=1").
	PauseAfter int
	// DisconnectAfter drops the connection after that many complete events
	// ("disconnect-after=3"; 0 right after the headers). For a JSON answer,
	// any value sends half the body and then drops the connection.
	DisconnectAfter int
	// TruncateAfter sends that many complete events and half of the next,
	// then drops the connection ("truncate-after=2").
	TruncateAfter int
}

// noFault is no fault: every count unset.
var noFault = Fault{PauseAfter: -1, DisconnectAfter: -1, TruncateAfter: -1}

// ParseFault parses a fault spec: comma-separated key=value pairs among
// status=N, delay=D, header-delay=D, pause-after=N, disconnect-after=N,
// truncate-after=N (D a Go duration). An empty spec is no fault.
func ParseFault(spec string) (Fault, error) {
	f := noFault
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return noFault, fmt.Errorf("fakemodel: fault %q: want key=value", part)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		var err error
		switch k {
		case "status":
			f.Status, err = strconv.Atoi(v)
			if err == nil && (f.Status < 100 || f.Status > 599) {
				err = fmt.Errorf("out of range")
			}
		case "delay":
			f.Delay, err = time.ParseDuration(v)
		case "header-delay":
			f.HeaderDelay, err = time.ParseDuration(v)
		case "pause-after":
			f.PauseAfter, err = count(v)
		case "disconnect-after":
			f.DisconnectAfter, err = count(v)
		case "truncate-after":
			f.TruncateAfter, err = count(v)
		default:
			return noFault, fmt.Errorf("fakemodel: unknown fault %q", k)
		}
		if err != nil {
			return noFault, fmt.Errorf("fakemodel: fault %s=%q: %v", k, v, err)
		}
	}
	return f, nil
}

func count(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err == nil && n < 0 {
		err = fmt.Errorf("negative")
	}
	return n, err
}
