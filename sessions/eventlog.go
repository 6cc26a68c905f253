// This file is the event log. Every event gets the next sequence number of
// its session and is committed to the store before anyone can read it; a
// Journal groups the commits of all sessions into few transactions. Viewers
// pull from a Log (recent events from memory, older ones from the store)
// and wait for the next commit, so a slow viewer never slows the agent and
// never misses an event: it only falls behind.

package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// EventStore is what the event log needs of the store.
type EventStore interface {
	AppendEvents(ctx context.Context, evs []store.Event) error
	Events(ctx context.Context, sessionID string, afterSeq int64, limit int) ([]store.Event, error)
	LastEventSeq(ctx context.Context, sessionID string) (int64, error)
}

// ErrLogClosed reports an append to a log whose session has ended.
var ErrLogClosed = errors.New("sessions: event log closed")

// ErrEventsLost is Sync's answer when the store refused an event it waited
// for (and so every one after it: see Log.failed).
var ErrEventsLost = errors.New("sessions: events lost to a store failure")

// JournalOptions configure a Journal. Zero values mean the defaults.
type JournalOptions struct {
	// MaxBatch bounds the events committed in one transaction. Default 512.
	MaxBatch int
	// Queue bounds the appends waiting for the writer. An append waits for
	// room (the agent's read loop slows with the disk; nothing is dropped).
	// Default 4096.
	Queue int
	// Logger: nil is silent.
	Logger *slog.Logger
}

// Journal is the one writer of every session's events: it takes appends
// in order, commits them in batches, and tells each appender when its
// events are durable.
type Journal struct {
	st    EventStore
	reqs  chan *appendReq
	max   int
	log   *slog.Logger
	stop  context.CancelFunc
	ended chan struct{}

	changeMu sync.Mutex
	changed  chan struct{} // closed after each commit, then replaced
}

// Changed returns a channel closed after the next commit of any session's
// events: what follows the sessions list (WatchHandler) waits on it.
func (j *Journal) Changed() <-chan struct{} {
	j.changeMu.Lock()
	defer j.changeMu.Unlock()
	return j.changed
}

func (j *Journal) announce() {
	j.changeMu.Lock()
	defer j.changeMu.Unlock()
	close(j.changed)
	j.changed = make(chan struct{})
}

type appendReq struct {
	evs []store.Event
	// settled, when set, is called by the writer with the outcome before
	// done is signalled: it publishes the events (or forgets them), so the
	// order of publication is the order of commits, whether or not anyone
	// waits on done.
	settled func(error)
	done    chan error
}

func (r *appendReq) finish(err error) {
	if r.settled != nil {
		r.settled(err)
	}
	r.done <- err
}

// NewJournal starts a journal writing to st. Close stops it.
func NewJournal(st EventStore, opts *JournalOptions) *Journal {
	var o JournalOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := &Journal{st: st, reqs: make(chan *appendReq, o.Queue), max: o.MaxBatch, log: o.Logger,
		stop: cancel, ended: make(chan struct{}), changed: make(chan struct{})}
	go j.run(ctx)
	return j
}

// Close stops the writer after committing what is queued.
func (j *Journal) Close() {
	j.stop()
	<-j.ended
}

func (j *Journal) run(ctx context.Context) {
	defer close(j.ended)
	for {
		var first *appendReq
		select {
		case first = <-j.reqs:
		case <-ctx.Done():
			// Commit what is already queued, then stop.
			for {
				select {
				case r := <-j.reqs:
					j.commit(context.WithoutCancel(ctx), []*appendReq{r})
				default:
					return
				}
			}
		}
		batch := []*appendReq{first}
		n := len(first.evs)
	fill:
		for n < j.max {
			select {
			case r := <-j.reqs:
				batch = append(batch, r)
				n += len(r.evs)
			default:
				break fill
			}
		}
		j.commit(context.WithoutCancel(ctx), batch)
	}
}

// commit writes a batch in one transaction. If that fails, each request
// is retried alone, so one bad append does not fail its neighbours.
func (j *Journal) commit(ctx context.Context, batch []*appendReq) {
	var evs []store.Event
	for _, r := range batch {
		evs = append(evs, r.evs...)
	}
	defer j.announce()
	err := j.st.AppendEvents(ctx, evs)
	if err == nil || len(batch) == 1 {
		for _, r := range batch {
			r.finish(err)
		}
		return
	}
	j.log.Warn("event batch refused; committing its appends one by one", "events", len(evs), "err", err)
	for _, r := range batch {
		r.finish(j.st.AppendEvents(ctx, r.evs))
	}
}

// enqueue hands events to the writer; wait blocks until they are durable.
func (j *Journal) enqueue(ctx context.Context, evs []store.Event, settled func(error)) (wait func() error, err error) {
	r := &appendReq{evs: evs, settled: settled, done: make(chan error, 1)}
	select {
	case j.reqs <- r:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-j.ended:
		return nil, ErrLogClosed
	}
	return func() error { return <-r.done }, nil
}

// RecentEvents is how many committed events a Log keeps in memory for
// viewers that are nearly caught up.
const RecentEvents = 1024

// Log is one session's event log.
type Log struct {
	id string
	j  *Journal
	st EventStore

	appendMu sync.Mutex // orders seq assignment with enqueueing

	mu        sync.Mutex
	next      int64  // the seq the next append gets
	gen       uint64 // bumped when a failure restarts numbering
	committed int64  // every seq ≤ committed is durable and readable
	pending   map[int64]pendingEvent
	recent    []store.Event // the last RecentEvents committed, in order
	notify    chan struct{} // closed at each commit, then replaced
	closed    bool

	sum scanned // what the events appended so far say (see scanned)

	syncWaiting func() // tests: Sync has taken its target
}

// OpenLog opens the log of a session recorded in the store, continuing
// after its last stored event.
func (j *Journal) OpenLog(ctx context.Context, sessionID string) (*Log, error) {
	last, err := j.st.LastEventSeq(ctx, sessionID)
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	return &Log{id: sessionID, j: j, st: j.st, next: last + 1, committed: last,
		pending: map[int64]pendingEvent{}, notify: make(chan struct{})}, nil
}

type pendingEvent struct {
	e   store.Event
	gen uint64
}

// seed starts the log's summary from what the stored events said (a log
// reopened after a restart).
func (l *Log) seed(sc scanned) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sc.Seq <= l.committed && l.sum.Seq == 0 {
		l.sum = sc
	}
}

// summary is what the log's events say about its session so far (those
// appended, committed or not).
func (l *Log) summary() scanned {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sum
}

// SessionID is the session whose log this is.
func (l *Log) SessionID() string { return l.id }

// Append records one event: data is marshalled to JSON, numbered, and
// committed. It returns once the event is durable and visible to readers.
func (l *Log) Append(ctx context.Context, typ string, data any) (store.Event, error) {
	e, wait, err := l.enqueue(ctx, typ, data)
	if err != nil {
		return store.Event{}, err
	}
	if err := wait(); err != nil {
		return store.Event{}, fmt.Errorf("append %s event: %w", typ, err)
	}
	return e, nil
}

// AppendAsync records one event like Append but returns as soon as it is
// queued, numbered, for the journal: readers still see it only once it is
// durable, and events keep their order. The agent's stream is not held up
// by one commit per event, and the journal can batch them. A store failure
// goes to onErr (nil: ignored), from the journal's goroutine.
func (l *Log) AppendAsync(ctx context.Context, typ string, data any, onErr func(error)) error {
	_, wait, err := l.enqueue(ctx, typ, data)
	if err != nil {
		return err
	}
	if onErr != nil {
		go func() {
			if err := wait(); err != nil {
				onErr(fmt.Errorf("append %s event: %w", typ, err))
			}
		}()
	}
	return nil
}

// enqueue numbers an event and hands it to the journal, which publishes it
// (commitUpTo) or forgets it (failed) when the commit is settled.
func (l *Log) enqueue(ctx context.Context, typ string, data any) (store.Event, func() error, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return store.Event{}, nil, fmt.Errorf("append %s event: %w", typ, err)
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return store.Event{}, nil, ErrLogClosed
	}
	// At the store's precision (microseconds), so that an event read back
	// after a restart is the event viewers were sent live, time included.
	e := store.Event{SessionID: l.id, Seq: l.next, Type: typ, Data: raw, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	l.sum.apply(e)
	gen := l.gen
	l.next++
	l.pending[e.Seq] = pendingEvent{e, gen}
	l.mu.Unlock()
	wait, err := l.j.enqueue(ctx, []store.Event{e}, func(err error) {
		if err != nil {
			l.failed(e.Seq, gen)
			return
		}
		l.commitUpTo(e.Seq)
	})
	if err != nil {
		l.failed(e.Seq, gen)
		return store.Event{}, nil, fmt.Errorf("append %s event: %w", typ, err)
	}
	return e, wait, nil
}

// commitUpTo publishes every pending event up to seq. Commits arrive in
// seq order (the journal is FIFO), but their waiters may wake out of
// order, so publication advances only over a contiguous run.
func (l *Log) commitUpTo(seq int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	advanced := false
	for l.committed < seq {
		p, ok := l.pending[l.committed+1]
		if !ok {
			break
		}
		delete(l.pending, p.e.Seq)
		l.recent = append(l.recent, p.e)
		if len(l.recent) > RecentEvents {
			l.recent = l.recent[len(l.recent)-RecentEvents:]
		}
		l.committed = p.e.Seq
		advanced = true
	}
	if advanced {
		close(l.notify)
		l.notify = make(chan struct{})
	}
}

// advance publishes the events the store holds up to seq, for a log
// followed from the store (another node appends them).
func (l *Log) advance(seq int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq > l.committed && !l.closed {
		l.committed, l.next = seq, seq+1
		close(l.notify)
		l.notify = make(chan struct{})
	}
}

// failed handles an event that was not committed. The first failure of a
// generation forgets it and every event numbered after it (they cannot be
// committed once there is a gap: the store refuses them too), and
// numbering restarts at its seq in a new generation; the later failures of
// that old generation change nothing more.
func (l *Log) failed(seq int64, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen {
		return
	}
	l.gen++
	for s := range l.pending {
		if s >= seq {
			delete(l.pending, s)
		}
	}
	l.next = seq
	close(l.notify) // Sync waiters: their events are gone
	l.notify = make(chan struct{})
}

// Sync waits until every event appended before it is settled: durable,
// or dropped by a store failure while it waited (ErrEventsLost; each
// append's own caller hears of its loss, see AppendAsync). It also returns
// when the log is closed or ctx ends.
func (l *Log) Sync(ctx context.Context) error {
	l.mu.Lock()
	target, gen := l.next-1, l.gen
	l.mu.Unlock()
	if l.syncWaiting != nil {
		l.syncWaiting()
	}
	return l.waitUntil(ctx, func() (bool, error) {
		switch {
		case l.committed >= target:
			return true, nil
		case l.gen != gen:
			return false, ErrEventsLost
		case l.closed:
			return false, ErrLogClosed
		}
		return false, nil
	})
}

// Committed is the seq of the last durable event.
func (l *Log) Committed() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.committed
}

// LastAt is when the last durable event was recorded (zero: none since
// the log was opened).
func (l *Log) LastAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recent) == 0 {
		return time.Time{}
	}
	return l.recent[len(l.recent)-1].CreatedAt
}

// Close ends the log: appends fail, readers see the end once they have
// read everything.
func (l *Log) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.notify)
		l.notify = make(chan struct{})
	}
}

// Read returns up to max committed events after seq after: from memory when
// they are recent, from the store otherwise. An empty result means the
// reader is caught up.
func (l *Log) Read(ctx context.Context, after int64, max int) ([]store.Event, error) {
	if max <= 0 {
		max = store.DefaultEventLimit
	}
	l.mu.Lock()
	committed := l.committed
	if after >= committed {
		l.mu.Unlock()
		return nil, nil
	}
	if n := len(l.recent); n > 0 && l.recent[0].Seq <= after+1 {
		start := int(after + 1 - l.recent[0].Seq)
		end := min(n, start+max)
		out := append([]store.Event(nil), l.recent[start:end]...)
		l.mu.Unlock()
		return out, nil
	}
	l.mu.Unlock()
	evs, err := l.st.Events(ctx, l.id, after, max)
	if err != nil {
		return nil, err
	}
	// The store may already hold events the log has not published yet;
	// never hand those out ahead of the rest.
	for i, e := range evs {
		if e.Seq > committed {
			return evs[:i], nil
		}
	}
	return evs, nil
}

// Wait blocks until an event after seq after is committed, the log is
// closed (io.EOF-like: ErrLogClosed), or ctx ends.
func (l *Log) Wait(ctx context.Context, after int64) error {
	return l.waitUntil(ctx, func() (bool, error) {
		switch {
		case l.committed > after:
			return true, nil
		case l.closed:
			return false, ErrLogClosed
		}
		return false, nil
	})
}

// waitUntil blocks until check, called with l.mu held at each commit (and
// each failure or close), is done or fails, or ctx ends.
func (l *Log) waitUntil(ctx context.Context, check func() (done bool, err error)) error {
	for {
		l.mu.Lock()
		done, err := check()
		ch := l.notify
		l.mu.Unlock()
		if done || err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
