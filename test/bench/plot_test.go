package bench_test

import (
	"flag"
	"fmt"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// outDir is where the benchmarks write their tables and plots (`make bench`: bin/bench);
// empty: nowhere, the tables go to stdout only.
var outDir = flag.String("out", "", "directory for the tables (.txt) and distribution plots (.png); empty: none")

// writeOut writes data to name in outDir, if one is set, and returns the path written.
func writeOut(name string, data []byte) (string, error) {
	if *outDir == "" {
		return "", nil
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(*outDir, name)
	return p, os.WriteFile(p, data, 0o644)
}

// series is one box of a panel: a label, the outages (ms) of its samples and the colour of
// their dots (an index into plotColors: the implementation).
type series struct {
	label string
	ms    []float64
	color int
}

// panel is one plot: a title and its series side by side.
type panel struct {
	title  string
	series []series
}

var (
	// Colours of the two implementations, keepalived and kube-vrrp: orange and blue of Okabe
	// and Ito's palette, told apart without colour vision too.
	plotColors = []color.Color{color.RGBA{0xe6, 0x9f, 0x00, 0xff}, color.RGBA{0x00, 0x72, 0xb2, 0xff}}
	gray       = color.Gray{0x60}
)

// msTicks are plot.DefaultTicks labelled with as few digits as they need ("25", not "25.00").
type msTicks struct{}

func (msTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// msList formats outages in ms, to 0.1 ms.
func msList(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strings.Join(s, " ")
}

// newPanelPlot draws p: per series a box plot (median, quartiles, whiskers to the furthest
// sample within 1.5 IQR) and every sample as a dot, spread sideways so equal values stay
// apart. An empty series gets a label and nothing else.
func newPanelPlot(p panel) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.title
	pl.Y.Label.Text = "outage ms"
	pl.Y.Tick.Marker = msTicks{}
	pl.Add(plotter.NewGrid())
	var names []string
	for i, s := range p.series {
		names = append(names, s.label)
		if len(s.ms) == 0 {
			continue
		}
		box, err := plotter.NewBoxPlot(vg.Points(28), float64(i), plotter.Values(s.ms))
		if err != nil {
			return nil, err
		}
		box.GlyphStyle.Radius = 0 // outliers are dots already
		box.BoxStyle.Color = gray
		box.MedianStyle.Color = gray
		box.MedianStyle.Width = vg.Points(1.5)
		box.WhiskerStyle.Color = gray
		xys := make(plotter.XYs, len(s.ms))
		for j, v := range s.ms {
			// Spread over +-0.2 of the slot, in the order of the runs.
			off := 0.0
			if len(s.ms) > 1 {
				off = -0.2 + 0.4*float64(j)/float64(len(s.ms)-1)
			}
			xys[j] = plotter.XY{X: float64(i) + off, Y: v}
		}
		dots, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		dots.GlyphStyle.Shape = draw.CircleGlyph{}
		dots.GlyphStyle.Radius = vg.Points(2.5)
		dots.GlyphStyle.Color = plotColors[s.color%len(plotColors)]
		pl.Add(box, dots)
	}
	pl.NominalX(names...)
	pl.X.Min, pl.X.Max = -0.5, float64(len(p.series))-0.5
	return pl, nil
}

// writePanels lays the panels out in a grid of cols columns, each w x h, and writes the PNG
// name to outDir. It returns the path written ("" without outDir).
func writePanels(name string, panels []panel, cols int, w, h vg.Length) (string, error) {
	if *outDir == "" || len(panels) == 0 {
		return "", nil
	}
	cols = max(1, min(cols, len(panels)))
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, p := range panels {
		pl, err := newPanelPlot(p)
		if err != nil {
			return "", fmt.Errorf("plot %q: %w", p.title, err)
		}
		grid[i/cols][i%cols] = pl
	}
	img := vgimg.NewWith(vgimg.UseWH(w*vg.Length(cols), h*vg.Length(rows)), vgimg.UseDPI(120))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter, PadY: vg.Millimeter,
		PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(4)}
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for c, pl := range grid[r] {
			if pl != nil {
				pl.Draw(canvases[r][c])
			}
		}
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(*outDir, name)
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return "", err
	}
	return p, f.Close()
}

// TestWritePanels draws two panels side by side and reads the PNG back: its size is the
// grid's, and the samples are drawn in their implementation's colour. With -out it leaves
// the PNG there.
func TestWritePanels(t *testing.T) {
	if *outDir == "" {
		*outDir = t.TempDir()
		t.Cleanup(func() { *outDir = "" })
	}
	panels := []panel{
		{title: "link-cut v2 1s", series: []series{
			{label: "keepalived", ms: []float64{3618, 3619, 3621, 3610, 3619}},
			{label: "kube-vrrp", ms: []float64{3615, 3620, 3611, 3616, 3630}, color: 1},
		}},
		{title: "sigterm v3 10ms", series: []series{{label: "keepalived", ms: []float64{40}}, {label: "kube-vrrp"}}},
	}
	p, err := writePanels("test-panels.png", panels, 3, 4*vg.Inch, 3*vg.Inch)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 2*4*120 || b.Dy() != 3*120 {
		t.Errorf("image %v, want two 4x3 in panels at 120 dpi (960x360)", b)
	}
	found := map[color.RGBA]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			found[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 0xff}] = true
		}
	}
	for i, c := range plotColors {
		if !found[c.(color.RGBA)] {
			t.Errorf("no sample drawn in colour %d (%v)", i, c)
		}
	}
}
