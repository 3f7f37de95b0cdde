package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// What the Dockerfile says about its final image, read the way Docker reads it (enough of
// it for this Dockerfile: continuation lines, comments, stages, exec-form JSON, ARG and
// ${VAR} substitution, shell words in RUN).

type instruction struct {
	line int    // 1-based, of its first line
	cmd  string // upper case
	args string // continuation lines joined
}

type stage struct {
	from, name string
	ins        []instruction
}

func parseDockerfile(text string) ([]stage, error) {
	var (
		stages  []stage
		pending strings.Builder
		start   int
	)
	flush := func() error {
		s := strings.TrimSpace(pending.String())
		pending.Reset()
		if s == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			} else if len(f) != 1 {
				return fmt.Errorf("line %d: FROM %s", start, in.args)
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				return nil // an ARG before the first FROM
			}
			return fmt.Errorf("line %d: %s before FROM", start, in.cmd)
		}
		st := &stages[len(stages)-1]
		st.ins = append(st.ins, in)
		return nil
	}
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment, also between continuation lines
		}
		if pending.Len() == 0 {
			if trimmed == "" {
				continue
			}
			start = i + 1
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			pending.WriteString(body)
			pending.WriteString(" ")
			continue
		}
		pending.WriteString(line)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return stages, nil
}

// words splits s as a shell would into words, with quotes ("..." and '...') removed and
// ${NAME} and $NAME replaced from vars outside single quotes. An unknown name is an error,
// unless keep: then it stays as written (a RUN's shell variables).
func words(s string, vars map[string]string, keep bool) ([]string, error) {
	var (
		out    []string
		cur    strings.Builder
		inWord bool
		quote  rune
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == 0 && (r == ' ' || r == '\t'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
			continue
		case quote == 0 && (r == '"' || r == '\''):
			quote, inWord = r, true
			continue
		case quote != 0 && r == quote:
			quote = 0
			continue
		case r == '$' && quote != '\'' && i+1 < len(rs):
			var name string
			from := i
			if rs[i+1] == '{' {
				end := strings.IndexRune(string(rs[i+2:]), '}')
				if end < 0 {
					return nil, fmt.Errorf("unterminated ${ in %q", s)
				}
				name = string(rs[i+2 : i+2+end])
				i += 2 + end
			} else {
				j := i + 1
				for j < len(rs) && (rs[j] == '_' || rs[j] >= 'A' && rs[j] <= 'Z' || rs[j] >= 'a' && rs[j] <= 'z' || rs[j] >= '0' && rs[j] <= '9') {
					j++
				}
				name = string(rs[i+1 : j])
				i = j - 1
			}
			v, ok := vars[name]
			if !ok {
				if !keep {
					return nil, fmt.Errorf("$%s in %q: not an ARG", name, s)
				}
				v = string(rs[from : i+1])
			}
			cur.WriteString(v)
			inWord = true
			continue
		}
		cur.WriteRune(r)
		inWord = true
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// copyInstr is a COPY of the final stage.
type copyInstr struct {
	from, chown, chmod string
	src                []string
	dst                string
}

// goBuild is the build stage's `go build` of the binary.
type goBuild struct {
	env      map[string]string // assignments before the command (CGO_ENABLED=0)
	trimpath bool
	ldflags  string
	out, pkg string
}

// dockerImage is what the Dockerfile says of its final image.
type dockerImage struct {
	base         string
	user         string
	entrypoint   []string
	cmd          []string
	workdir      string   // "" if the final stage has no WORKDIR
	env          []string // the final stage's ENV, as KEY=VALUE
	labels       map[string]string
	copies       []copyInstr
	layers       int // instructions of the final stage that add a layer (COPY, ADD, RUN)
	build        *goBuild
	setcap       string // the build stage's `setcap CAPS PATH`: CAPS
	setcapTarget string // and PATH
}

// readDockerfile reads the final image out of the Dockerfile's text; buildArgs are the
// --build-arg values (VERSION, COMMIT), which replace the ARG defaults.
func readDockerfile(text string, buildArgs map[string]string) (*dockerImage, error) {
	stages, err := parseDockerfile(text)
	if err != nil {
		return nil, err
	}
	final := stages[len(stages)-1]
	d := &dockerImage{base: final.from, labels: map[string]string{}}
	stageVars := func(st stage) map[string]string {
		vars := map[string]string{}
		for _, in := range st.ins {
			if in.cmd == "ARG" {
				k, v, _ := strings.Cut(in.args, "=")
				if bv, ok := buildArgs[k]; ok {
					v = bv
				}
				vars[k] = v
			}
		}
		return vars
	}
	vars := stageVars(final)
	for _, in := range final.ins {
		switch in.cmd {
		case "USER":
			d.user = in.args
		case "WORKDIR":
			d.workdir = in.args
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(in.args), &v); err != nil {
				return nil, fmt.Errorf("line %d: %s not in exec (JSON) form: %v", in.line, in.cmd, err)
			}
			if in.cmd == "ENTRYPOINT" {
				d.entrypoint = v
			} else {
				d.cmd = v
			}
		case "ENV", "LABEL":
			ws, err := words(in.args, vars, false)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", in.line, err)
			}
			for _, w := range ws {
				k, v, ok := strings.Cut(w, "=")
				if !ok {
					return nil, fmt.Errorf("line %d: %s %q: want KEY=VALUE", in.line, in.cmd, w)
				}
				if in.cmd == "ENV" {
					d.env = append(d.env, k+"="+v)
				} else {
					d.labels[k] = v
				}
			}
		case "COPY", "ADD":
			d.layers++
			ws, err := words(in.args, vars, false)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", in.line, err)
			}
			var c copyInstr
			for len(ws) > 0 && strings.HasPrefix(ws[0], "--") {
				k, v, _ := strings.Cut(strings.TrimPrefix(ws[0], "--"), "=")
				switch k {
				case "from":
					c.from = v
				case "chown":
					c.chown = v
				case "chmod":
					c.chmod = v
				default:
					return nil, fmt.Errorf("line %d: %s --%s: not understood here", in.line, in.cmd, k)
				}
				ws = ws[1:]
			}
			if in.cmd == "ADD" || len(ws) < 2 {
				return nil, fmt.Errorf("line %d: %s %s: want COPY [--from=STAGE] SRC... DST", in.line, in.cmd, in.args)
			}
			c.src, c.dst = ws[:len(ws)-1], ws[len(ws)-1]
			d.copies = append(d.copies, c)
		case "RUN":
			d.layers++
		case "ARG":
		default:
			return nil, fmt.Errorf("line %d: %s in the final stage: not understood here", in.line, in.cmd)
		}
	}
	// The stage the binary comes from.
	for _, c := range d.copies {
		for _, st := range stages[:len(stages)-1] {
			if c.from == "" || st.name != c.from {
				continue
			}
			vars := stageVars(st)
			for _, in := range st.ins {
				if in.cmd != "RUN" {
					continue
				}
				ws, err := words(in.args, vars, true)
				if err != nil {
					return nil, fmt.Errorf("line %d: %v", in.line, err)
				}
				for _, cmd := range commands(ws) {
					if err := d.readCommand(cmd, in.line); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return d, nil
}

// commands splits a RUN's words at && and ;.
func commands(ws []string) [][]string {
	var out [][]string
	var cur []string
	for _, w := range ws {
		if w == "&&" || w == ";" || w == "||" || w == "|" {
			out = append(out, cur)
			cur = nil
			continue
		}
		cur = append(cur, w)
	}
	return append(out, cur)
}

func (d *dockerImage) readCommand(cmd []string, line int) error {
	env := map[string]string{}
	for len(cmd) > 0 && strings.Contains(cmd[0], "=") && !strings.HasPrefix(cmd[0], "-") {
		k, v, _ := strings.Cut(cmd[0], "=")
		env[k] = v
		cmd = cmd[1:]
	}
	switch {
	case len(cmd) >= 2 && cmd[0] == "go" && cmd[1] == "build":
		b := &goBuild{env: env}
		args := cmd[2:]
		for i := 0; i < len(args); i++ {
			switch a := args[i]; {
			case a == "-trimpath":
				b.trimpath = true
			case (a == "-ldflags" || a == "-o") && i+1 < len(args):
				if a == "-o" {
					b.out = args[i+1]
				} else {
					b.ldflags = args[i+1]
				}
				i++
			case strings.HasPrefix(a, "-"):
				return fmt.Errorf("line %d: go build %s: not understood here", line, a)
			default:
				b.pkg = a
			}
		}
		d.build = b
	case len(cmd) == 3 && cmd[0] == "setcap":
		d.setcap, d.setcapTarget = cmd[1], cmd[2]
	}
	return nil
}
