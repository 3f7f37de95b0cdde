package keepalived

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Node is one statement: a keyword, its arguments on the same line, and an optional block.
type Node struct {
	Keyword string
	Pos     Pos // of the keyword
	Args    []Arg
	// Block is the statements between '{' and '}'; HasBlock tells an empty block from none.
	Block    []*Node
	HasBlock bool
	BlockPos Pos // of the '{'
}

// Arg is one argument of a statement.
type Arg struct {
	Value  string // quotes removed, escapes resolved
	Pos    Pos
	Quoted bool
}

// AST is a parsed configuration before interpretation.
type AST struct {
	// Files are every file read, the main one first, as shown in positions.
	Files    []string
	Nodes    []*Node
	Warnings []Warning
}

// ParseAST reads the configuration file name from fsys (and the files it includes) into a
// block tree. Absolute include paths are taken relative to the root of fsys; relative ones
// to the directory of the including file. Errors are *Error values with a position.
func ParseAST(fsys fs.FS, name string, opts *Options) (*AST, error) {
	return parseAST(fsys, path.Clean(name), opts, func(p string) string { return p })
}

func parseAST(fsys fs.FS, name string, opts *Options, display func(string) string) (*AST, error) {
	r := &reader{fsys: fsys, opts: opts.withDefaults(), display: display}
	src, err := r.open(name, Pos{File: display(name)}, nil)
	if err != nil {
		return nil, err
	}
	r.stack = append(r.stack, src)
	nodes, err := parseBlocks(r)
	if err != nil {
		return nil, err
	}
	return &AST{Files: r.files, Nodes: nodes, Warnings: r.warnings}, nil
}

// parseBlocks builds the tree. keepalived accepts the '{' of a block at the end of the
// statement's line or alone at the start of the next line, and any number of statements and
// braces on one line ("authentication { auth_type PASS }").
func parseBlocks(r *reader) ([]*Node, *Error) {
	type frame struct {
		node     *Node
		children *[]*Node
	}
	var top []*Node
	stack := []frame{{children: &top}}
	var last *Node // the statement that ended the previous line, if it has no block yet
	for {
		toks, ok, err := r.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		var cur *Node
		finish := func() {
			if cur != nil {
				f := &stack[len(stack)-1]
				*f.children = append(*f.children, cur)
				cur = nil
			}
		}
		open := func(n *Node, at Pos) *Error {
			if len(stack) > r.opts.MaxNesting {
				return errorf(at, "blocks nested deeper than %d", r.opts.MaxNesting)
			}
			n.HasBlock, n.BlockPos = true, at
			stack = append(stack, frame{node: n, children: &n.Block})
			return nil
		}
		for i, t := range toks {
			switch t.kind {
			case tokWord:
				if cur == nil {
					cur = &Node{Keyword: t.text, Pos: t.pos}
				} else {
					cur.Args = append(cur.Args, Arg{Value: t.text, Pos: t.pos, Quoted: t.quoted})
				}
			case tokOpen:
				switch {
				case cur != nil:
					n := cur
					finish()
					if err := open(n, t.pos); err != nil {
						return nil, err
					}
				case i == 0 && last != nil:
					if err := open(last, t.pos); err != nil {
						return nil, err
					}
				default:
					return nil, errorf(t.pos, "unexpected '{' without a keyword before it")
				}
				last = nil
			case tokClose:
				finish()
				if len(stack) == 1 {
					return nil, errorf(t.pos, "unexpected '}' without a matching '{'")
				}
				stack = stack[:len(stack)-1]
				last = nil
			}
		}
		if cur != nil {
			n := cur
			finish()
			last = n
		} else if len(toks) > 0 && toks[len(toks)-1].kind != tokWord {
			last = nil
		}
	}
	if len(stack) > 1 {
		n := stack[len(stack)-1].node
		return nil, errorf(n.BlockPos, "'{' of %s is never closed (missing '}')", n.Keyword)
	}
	return top, nil
}

// Parse reads and interprets the configuration file name from fsys: see ParseAST for the
// file handling. The error, if any, is an *Error or an ErrorList; every one has a position.
func Parse(fsys fs.FS, name string, opts *Options) (*Config, error) {
	ast, err := ParseAST(fsys, name, opts)
	if err != nil {
		return nil, err
	}
	return Decode(ast)
}

// LoadFile parses the configuration file at the operating-system path file, reading it and
// its includes through os.DirFS("/"). Positions show file as given and included files by
// their path relative to the working directory when file was relative.
func LoadFile(file string, opts *Options) (*Config, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, &Error{Pos: Pos{File: file}, Msg: "cannot resolve path", Err: err}
	}
	abs = filepath.ToSlash(abs)
	name := strings.TrimPrefix(abs, "/")
	display := func(p string) string { return "/" + p }
	if !filepath.IsAbs(file) {
		if wd, err := os.Getwd(); err == nil {
			wd = strings.TrimPrefix(filepath.ToSlash(wd), "/")
			display = func(p string) string {
				if rel, ok := strings.CutPrefix(p, wd+"/"); ok && wd != "" {
					return rel
				}
				return "/" + p
			}
		}
	}
	ast, perr := parseAST(os.DirFS("/"), name, opts, display)
	if perr != nil {
		return nil, perr
	}
	return Decode(ast)
}
