package acp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/agentbroker/agentbroker/catalog"
)

// Defaults of ConnOptions.
const (
	DefaultUpdateQueue   = 256
	DefaultUpdateWait    = 30 * time.Second
	DefaultAskTimeout    = 2 * time.Minute
	DefaultCancelGrace   = 10 * time.Second
	DefaultMaxReadBytes  = 4 << 20
	DefaultMaxWriteBytes = 4 << 20
)

// ModelResolver checks a model for an agent (*catalog.Catalog satisfies it).
type ModelResolver interface {
	Resolve(agent, wireID string) (catalog.Resolved, error)
}

var _ ModelResolver = (*catalog.Catalog)(nil)

// ConnOptions configure NewConn. The zero value works: silent, no fs, the
// "ask" permission policy with nobody to ask (so every permission request
// is rejected), updates not delivered.
type ConnOptions struct {
	// Logger receives diagnostics. Nil: silent. Tokens are never logged.
	Logger *slog.Logger
	// ClientVersion is sent in clientInfo (name "agentbroker"). "": "devel".
	ClientVersion string
	// WorkDir, when set, makes us advertise fs.readTextFile and
	// fs.writeTextFile, and is the default cwd of Handshake. fs requests are
	// confined to the cwd of the session they name. "": no fs.
	WorkDir string
	// MaxLineBytes bounds a line from the agent. 0: DefaultMaxLineBytes.
	MaxLineBytes int
	// MaxReadBytes and MaxWriteBytes bound fs reads and writes. 0: 4 MiB.
	MaxReadBytes, MaxWriteBytes int

	// OnUpdate receives every session/update, one at a time and in the
	// order the agent sent them, from one goroutine. It must not call
	// Close or wait for a Prompt. Nil: updates are not delivered.
	OnUpdate func(Update)
	// UpdateQueue is the capacity of the update queue. 0: 256.
	UpdateQueue int
	// UpdateWait is how long the reader waits for room in a full update
	// queue before it fails the connection with ErrSubscriberTooSlow.
	// Nothing is dropped. 0: 30s.
	UpdateWait time.Duration

	// Permissions decides session/request_permission. "": PolicyAsk.
	Permissions PermissionPolicy
	// Asker is asked under PolicyAsk (and for other servers' tools under
	// PolicyAllowProjectTools). Nil: nobody is watching, requests are
	// rejected.
	Asker Asker
	// AskTimeout bounds the wait for Asker; then the request is rejected.
	// 0: 2 minutes.
	AskTimeout time.Duration
	// MCPServerName is our MCP server's name in session/new: tool calls to
	// it are "project tools".
	MCPServerName string
	// ProjectTool, if set, also recognises a call to our MCP server's tools
	// (server is MCPServerName) as this agent describes it in its
	// permission requests and tool_call updates (the agent's profile knows
	// how: profile.Launch.OwnTool).
	ProjectTool ToolRecognizer
	// OnExtension, if set, is told every request or notification from the
	// agent that the client does not handle (a request is then answered
	// -32601): Qwen Code's craft/drainMidTurnQueue, its qwen/notify/…
	// notifications. It runs on the read goroutine: it must not block.
	OnExtension func(method string, request bool, params json.RawMessage)
	// OnPermission, if set, is told every decision (from the request's
	// goroutine).
	OnPermission func(PermissionDecision)

	// Agent is the catalog agent name ("claude-code", "codex", "amp") that
	// model settings are checked against. "": models cannot be set.
	Agent string
	// Models checks models. Nil: catalog.Embedded().
	Models ModelResolver

	// CancelGrace is how long Prompt waits for the agent's answer after
	// its context ends and session/cancel is sent. 0: 10s.
	CancelGrace time.Duration
}

// Conn is a client connection to one ACP agent. Its methods are safe for
// concurrent use.
type Conn struct {
	opts   ConnOptions
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc
	rpc    *jsonrpc2.Conn
	io     *stdio

	queue        chan Update
	seq          atomic.Uint64 // updates enqueued (the read goroutine writes it)
	readDone     chan struct{}
	dispatchDone chan struct{}

	dmu       sync.Mutex
	delivered uint64
	progress  chan struct{}

	mu       sync.Mutex
	closing  bool
	wg       sync.WaitGroup
	sessions map[string]*sessionState
	init     *InitializeResponse
}

// NewConn starts a connection to an agent that reads our messages from w
// (its stdin) and writes its own to r (its stdout). Close ends it; so does
// ctx. If r or w implement io.Closer, Close closes them; a reader that is
// not a Closer must end by itself (EOF) for Close to return.
func NewConn(ctx context.Context, r io.Reader, w io.Writer, opts *ConnOptions) *Conn {
	c := &Conn{sessions: map[string]*sessionState{}, readDone: make(chan struct{}),
		dispatchDone: make(chan struct{}), progress: make(chan struct{})}
	if opts != nil {
		c.opts = *opts
	}
	o := &c.opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c.log = o.Logger
	if o.UpdateQueue <= 0 {
		o.UpdateQueue = DefaultUpdateQueue
	}
	if o.UpdateWait <= 0 {
		o.UpdateWait = DefaultUpdateWait
	}
	if o.AskTimeout <= 0 {
		o.AskTimeout = DefaultAskTimeout
	}
	if o.CancelGrace <= 0 {
		o.CancelGrace = DefaultCancelGrace
	}
	if o.MaxReadBytes <= 0 {
		o.MaxReadBytes = DefaultMaxReadBytes
	}
	if o.MaxWriteBytes <= 0 {
		o.MaxWriteBytes = DefaultMaxWriteBytes
	}
	if o.Models == nil {
		o.Models = catalog.Embedded()
	}
	if o.Permissions == "" {
		o.Permissions = PolicyAsk
	}
	c.queue = make(chan Update, o.UpdateQueue)
	c.ctx, c.cancel = context.WithCancelCause(ctx)
	c.io = &stdio{conn: c, filter: newLineFilter(r, o.MaxLineBytes, c.log), raw: r, w: w}

	c.rpc = jsonrpc2.NewConn(c.ctx, jsonrpc2.NewPlainObjectStream(c.io), handler{c},
		jsonrpc2.SetLogger(rpcLogger{c.log}))

	c.wg.Add(2)
	go func() { // watcher: a close by the library (or ctx) ends the connection
		defer c.wg.Done()
		select {
		case <-c.rpc.DisconnectNotify():
			c.fail(errors.New("acp: JSON-RPC connection closed"))
		case <-c.ctx.Done():
			c.rpc.Close()
		}
	}()
	go c.dispatch()
	return c
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.ctx.Done() }

// Err is why the connection ended (nil while it runs): ErrClosed after
// Close, ErrPeerClosed when the agent's output ended, ErrLineTooLong,
// ErrSubscriberTooSlow, the cause of the parent context, or a read error.
func (c *Conn) Err() error {
	if c.ctx.Err() == nil {
		return nil
	}
	return context.Cause(c.ctx)
}

// Stats are counters of a connection.
type Stats struct {
	SkippedLines int64  // lines from the agent that were not JSON-RPC messages
	Updates      uint64 // session/update notifications received
}

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats {
	return Stats{SkippedLines: c.io.filter.skipped.Load(), Updates: c.seq.Load()}
}

// Close ends the connection and waits for its goroutines: the request
// handlers, and the delivery of the updates already received.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	c.mu.Lock()
	c.closing = true
	sessions := c.sessions
	c.mu.Unlock()
	c.wg.Wait()
	if _, ok := c.io.raw.(io.Closer); ok {
		<-c.readDone
	}
	c.mu.Lock()
	for _, s := range sessions {
		s.close()
	}
	c.mu.Unlock()
	return nil
}

// fail ends the connection with cause (the first cause wins).
func (c *Conn) fail(cause error) {
	c.cancel(cause)
	c.rpc.Close()
}

// spawn runs f on a goroutine that Close waits for; false once closing.
func (c *Conn) spawn(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// stdio is the stream under jsonrpc2: filtered reads, plain writes.
type stdio struct {
	conn     *Conn
	filter   *lineFilter
	raw      io.Reader
	w        io.Writer
	readOnce sync.Once
	closed   sync.Once
}

func (s *stdio) Read(p []byte) (int, error) {
	n, err := s.filter.Read(p)
	if err != nil {
		s.readOnce.Do(func() {
			s.conn.cancel(err) // the cause is set before pending calls fail
			close(s.conn.readDone)
		})
	}
	return n, err
}

func (s *stdio) Write(p []byte) (int, error) { return s.w.Write(p) }

func (s *stdio) Close() error {
	s.closed.Do(func() {
		if c, ok := s.w.(io.Closer); ok {
			c.Close()
		}
		if c, ok := s.raw.(io.Closer); ok {
			c.Close()
		}
	})
	return nil
}

// rpcLogger routes sourcegraph/jsonrpc2's own messages to our logger.
type rpcLogger struct{ log *slog.Logger }

func (l rpcLogger) Printf(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

// handler runs on the jsonrpc2 read goroutine: it never waits for the
// agent. Updates go to the ordered queue; requests to goroutines.
type handler struct{ c *Conn }

func (h handler) Handle(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) {
	c := h.c
	if req.Notif {
		if req.Method == MethodSessionUpdate {
			c.receiveUpdate(req)
			return
		}
		c.log.Debug("acp: ignored a notification", "method", req.Method)
		if c.opts.OnExtension != nil && req.Method != MethodSessionUpdate {
			c.opts.OnExtension(req.Method, false, rawParams(req))
		}
		return
	}
	var params json.RawMessage
	if req.Params != nil {
		params = *req.Params
	}
	id := req.ID
	switch req.Method {
	case MethodRequestPermission:
		c.receivePermission(id, params)
	case MethodFSReadTextFile, MethodFSWriteTextFile:
		if c.opts.WorkDir == "" {
			c.spawn(func() { c.replyErr(id, fmt.Errorf("%w: %s (fs is not enabled)", ErrMethodNotFound, req.Method)) })
			return
		}
		method := req.Method
		c.spawn(func() {
			res, err := c.serveFS(method, params)
			c.reply(id, res, err)
		})
	default:
		method := req.Method
		c.log.Debug("acp: unknown request from the agent", "method", method)
		if c.opts.OnExtension != nil {
			c.opts.OnExtension(method, true, params)
		}
		c.spawn(func() { c.replyErr(id, fmt.Errorf("%w: %s", ErrMethodNotFound, method)) })
	}
}

func rawParams(req *jsonrpc2.Request) json.RawMessage {
	if req.Params == nil {
		return nil
	}
	return *req.Params
}

func (c *Conn) reply(id jsonrpc2.ID, result any, err error) {
	if err != nil {
		c.replyErr(id, err)
		return
	}
	if err := c.rpc.Reply(context.Background(), id, result); err != nil {
		c.log.Debug("acp: reply not sent", "id", id.String(), "err", err)
	}
}

func (c *Conn) replyErr(id jsonrpc2.ID, err error) {
	if err := c.rpc.ReplyWithError(context.Background(), id, wireError(err)); err != nil {
		c.log.Debug("acp: error reply not sent", "id", id.String(), "err", err)
	}
}

// receiveUpdate decodes an update, records what the connection tracks
// (tool calls, config options) and queues it for OnUpdate. A full queue
// blocks the reader for at most UpdateWait (back-pressure on the agent),
// then fails the connection: an update is never dropped.
func (c *Conn) receiveUpdate(req *jsonrpc2.Request) {
	var n SessionNotification
	if req.Params == nil {
		c.log.Warn("acp: session/update without params")
		return
	}
	if err := json.Unmarshal(*req.Params, &n); err != nil {
		// Keep what can be kept: the session and the raw update.
		var loose struct {
			SessionID string          `json:"sessionId"`
			Update    json.RawMessage `json:"update"`
		}
		_ = json.Unmarshal(*req.Params, &loose)
		var head struct {
			Kind string `json:"sessionUpdate"`
		}
		_ = json.Unmarshal(loose.Update, &head)
		c.log.Warn("acp: session/update not understood; delivered raw", "kind", head.Kind, "err", err)
		n = SessionNotification{SessionID: loose.SessionID, Update: SessionUpdate{Kind: head.Kind, Raw: loose.Update}}
	}
	c.track(n)
	if c.opts.OnUpdate == nil {
		c.seq.Add(1)
		return
	}
	u := Update{Seq: c.seq.Load() + 1, SessionNotification: n}
	select {
	case c.queue <- u:
		c.seq.Add(1)
		return
	default:
	}
	t := time.NewTimer(c.opts.UpdateWait)
	defer t.Stop()
	select {
	case c.queue <- u:
		c.seq.Add(1)
	case <-t.C:
		c.log.Error("acp: update subscriber too slow; failing the connection", "queue", cap(c.queue), "wait", c.opts.UpdateWait)
		c.fail(fmt.Errorf("%w: the queue of %d updates stayed full for %v", ErrSubscriberTooSlow, cap(c.queue), c.opts.UpdateWait))
	case <-c.ctx.Done():
	}
}

// dispatch delivers queued updates in order. When the reader has ended
// (or the connection is over) it delivers what is queued, then returns.
func (c *Conn) dispatch() {
	defer c.wg.Done()
	defer close(c.dispatchDone)
	deliver := func(u Update) {
		if c.opts.OnUpdate != nil {
			c.opts.OnUpdate(u)
		}
		c.dmu.Lock()
		c.delivered = u.Seq
		close(c.progress)
		c.progress = make(chan struct{})
		c.dmu.Unlock()
	}
	for {
		select {
		case u := <-c.queue:
			deliver(u)
			continue
		case <-c.readDone:
		case <-c.ctx.Done():
		}
		for {
			select {
			case u := <-c.queue:
				deliver(u)
			default:
				return
			}
		}
	}
}

// waitDelivered waits until every update received so far has been
// delivered (so that a turn's updates reach OnUpdate before Prompt
// returns), the dispatcher stops, or ctx ends.
func (c *Conn) waitDelivered(ctx context.Context) {
	if c.opts.OnUpdate == nil {
		return
	}
	target := c.seq.Load()
	for {
		c.dmu.Lock()
		done, ch := c.delivered >= target, c.progress
		c.dmu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-c.dispatchDone:
			return
		case <-ctx.Done():
			return
		}
	}
}

// call sends a request and waits for its answer.
func (c *Conn) call(ctx context.Context, method string, params, result any) error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("acp: %s: %w", method, err)
	}
	w, err := c.rpc.DispatchCall(ctx, method, params)
	if err != nil {
		return c.callErr(method, err)
	}
	if err := w.Wait(ctx, result); err != nil {
		return c.callErr(method, err)
	}
	return nil
}

// callErr names the cause of a failed call: the agent's error, or why the
// connection ended.
func (c *Conn) callErr(method string, err error) error {
	var je *jsonrpc2.Error
	if errors.As(err, &je) {
		return fromWire(method, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("acp: %s: %w", method, err)
	}
	// Closed, or a write failed: the connection is ending; wait briefly
	// for its cause.
	select {
	case <-c.ctx.Done():
		return fmt.Errorf("acp: %s: %w", method, context.Cause(c.ctx))
	case <-time.After(time.Second):
		return fmt.Errorf("acp: %s: %w", method, err)
	}
}

func (c *Conn) notify(ctx context.Context, method string, params any) error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("acp: %s: %w", method, err)
	}
	if err := c.rpc.Notify(ctx, method, params); err != nil {
		return c.callErr(method, err)
	}
	return nil
}
