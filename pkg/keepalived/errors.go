package keepalived

import (
	"fmt"
	"strings"
)

// Pos is a position in a configuration file. Line and Col count from 1; Col counts bytes.
type Pos struct {
	File string
	Line int
	Col  int
}

// String formats p as file:line:col, leaving out the parts that are unknown.
func (p Pos) String() string {
	switch {
	case p.Line <= 0:
		return p.File
	case p.Col <= 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// lineString is file:line, the form warnings use.
func (p Pos) lineString() string {
	if p.Line <= 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Error is a problem in a configuration at a position.
type Error struct {
	Pos Pos
	Msg string
	// Err is the underlying error (for example from the file system), if any.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Pos.String() + ": " + e.Msg + ": " + e.Err.Error()
	}
	return e.Pos.String() + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorList is several Errors, in the order they were found.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.Is and errors.As see every Error of the list.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// err returns l as an error, or nil when it is empty (a nil ErrorList in an error interface
// would not be nil).
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Warning is something in a configuration that was read but is not (fully) expressed in the
// result: an unknown keyword, an option kube-vrrp has no equivalent for, a changed default.
type Warning struct {
	Pos Pos
	Msg string
}

// String formats w as file:line: message.
func (w Warning) String() string { return w.Pos.lineString() + ": " + w.Msg }

func errorf(p Pos, format string, args ...any) *Error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}
