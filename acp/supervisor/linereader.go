package supervisor

import (
	"bufio"
	"bytes"
	"io"
)

// lineReader splits a stream into lines of at most max bytes. The rest of
// a longer line is read and dropped, and counted, so that one endless line
// cannot grow memory without bound.
type lineReader struct {
	br  *bufio.Reader
	max int
	buf []byte
}

func newLineReader(r io.Reader, limit int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 4096), max: limit, buf: make([]byte, 0, 256)}
}

// next returns the next line without its line ending, the number of bytes
// dropped from it, and the read error that ended the stream (with the last
// unterminated line, if any). line is nil when there is no line to report;
// it is only valid until the next call.
func (l *lineReader) next() (line []byte, dropped int, err error) {
	l.buf = l.buf[:0]
	got := false
	for {
		frag, e := l.br.ReadSlice('\n')
		if len(frag) > 0 {
			got = true
		}
		if e == nil {
			frag = bytes.TrimSuffix(frag[:len(frag)-1], []byte{'\r'})
		}
		room := l.max - len(l.buf)
		take := min(max(room, 0), len(frag))
		l.buf = append(l.buf, frag[:take]...)
		dropped += len(frag) - take
		if e == bufio.ErrBufferFull {
			continue
		}
		if !got {
			return nil, 0, e
		}
		return l.buf, dropped, e
	}
}
