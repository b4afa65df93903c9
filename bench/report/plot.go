package report

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot file names, without extension; every plot is written as .png and
// .svg.
const (
	throughputPlot = "throughput"
	sweepPrefix    = "sweep-"
)

// Plot writes, into dir, throughput.png/.svg (grouped bars: delivered Mpps
// per dataplane per scenario) and, for every scenario with Sweep data,
// sweep-<scenario>.png/.svg (delivered vs offered lines per dataplane with
// the y=x reference line). Returns the file paths. A run without results is
// ErrNoResults and writes nothing.
func Plot(r *Run, dir string) ([]string, error) {
	if r == nil {
		return nil, ErrNoRun
	}
	if len(r.Results) == 0 {
		return nil, ErrNoResults
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	colors := seriesColors(r)
	var files []string
	p, w, h, err := throughputChart(r, colors)
	if err != nil {
		return nil, fmt.Errorf("plot throughput: %w", err)
	}
	written, err := save(p, w, h, filepath.Join(dir, throughputPlot))
	files = append(files, written...)
	if err != nil {
		return files, err
	}
	names := sweepNames(r)
	for _, sc := range r.Scenarios() {
		name, ok := names[sc]
		if !ok {
			continue
		}
		p, err := sweepChart(r, sc, colors)
		if err != nil {
			return files, fmt.Errorf("plot sweep %s: %w", sc, err)
		}
		written, err := save(p, 7*vg.Inch, 5*vg.Inch, filepath.Join(dir, name))
		files = append(files, written...)
		if err != nil {
			return files, err
		}
	}
	return files, nil
}

func save(p *plot.Plot, w, h vg.Length, base string) ([]string, error) {
	var files []string
	for _, ext := range []string{".png", ".svg"} {
		if err := p.Save(w, h, base+ext); err != nil {
			return files, fmt.Errorf("save %s: %w", base+ext, err)
		}
		files = append(files, base+ext)
	}
	return files, nil
}

// sweepNames maps each scenario with sweep data to its plot's file name
// (without extension). Scenario names come from the JSON file, so they are
// reduced to characters safe in a file name and a Markdown link, and kept
// distinct if that reduction makes two equal.
func sweepNames(r *Run) map[string]string {
	names := make(map[string]string)
	used := make(map[string]bool)
	for _, sc := range r.Scenarios() {
		if !slices.ContainsFunc(r.Results, func(res Result) bool { return res.Scenario == sc && len(plottable(res.Sweep)) > 0 }) {
			continue
		}
		base := sweepPrefix + safeName(sc)
		name := base
		for i := 2; used[name]; i++ {
			name = base + "-" + strconv.Itoa(i)
		}
		used[name] = true
		names[sc] = name
	}
	return names
}

func safeName(s string) string {
	s = strings.Map(func(c rune) rune {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
			return c
		}
		return '_'
	}, s)
	if s == "" {
		return "_"
	}
	return s
}

// seriesKey identifies one series in both plots: a dataplane, steered or
// not.
type seriesKey struct {
	dataplane string
	steered   bool
}

// seriesList returns every (dataplane, steering) in the run in table order.
func seriesList(r *Run) []seriesKey {
	var keys []seriesKey
	for i := range r.Results {
		res := &r.Results[i]
		k := seriesKey{res.Dataplane, res.Steered}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.SortStableFunc(keys, func(a, b seriesKey) int {
		return compareResults(&Result{Dataplane: a.dataplane, Steered: a.steered}, &Result{Dataplane: b.dataplane, Steered: b.steered})
	})
	return keys
}

// seriesColors gives each dataplane one colour for the whole run, so a
// dataplane looks the same in every plot; unsteered series share their
// dataplane's colour and are told apart by hatching or dashes.
func seriesColors(r *Run) map[string]color.Color {
	colors := make(map[string]color.Color)
	for _, k := range seriesList(r) {
		if _, ok := colors[k.dataplane]; !ok {
			colors[k.dataplane] = plotutil.Color(len(colors))
		}
	}
	return colors
}

func (k seriesKey) label() string {
	return label(&Result{Dataplane: k.dataplane, Steered: k.steered})
}

// pick returns the result shown for a series in a scenario: the first
// without an error, else the first.
func pick(r *Run, scenario string, k seriesKey) *Result {
	var found *Result
	for i := range r.Results {
		res := &r.Results[i]
		if res.Scenario != scenario || res.Dataplane != k.dataplane || res.Steered != k.steered {
			continue
		}
		if res.Error == "" {
			return res
		}
		if found == nil {
			found = res
		}
	}
	return found
}

func throughputChart(r *Run, colors map[string]color.Color) (*plot.Plot, vg.Length, vg.Length, error) {
	scenarios := r.Scenarios()
	series := seriesList(r)
	p := plot.New()
	p.Title.Text = "Delivered rate per scenario"
	p.Y.Label.Text = "delivered Mpps"
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil // scenario ticks sit on the middle bar
	p.Add(grid)
	barWidth := vg.Points(14)
	top := 0.0
	for i, k := range series {
		fill, dashes := colors[k.dataplane], []vg.Length(nil)
		if !k.steered {
			// Same hue as its dataplane, lighter, dashed outline.
			fill, dashes = lighten(fill), []vg.Length{vg.Points(2), vg.Points(2)}
		}
		offset := vg.Length(float64(i)-float64(len(series)-1)/2) * barWidth
		var swatch *plotter.BarChart
		var labels plotter.XYLabels
		for j, sc := range scenarios {
			// A failed or missing measurement gets no bar rather than
			// a zero one that reads like a measured collapse; the
			// Markdown table says why.
			res := pick(r, sc, k)
			if res == nil || res.Error != "" || !finite(res.DeliveredPPS) {
				continue
			}
			v := math.Max(0, res.DeliveredPPS/1e6)
			top = math.Max(top, v)
			bar, err := plotter.NewBarChart(plotter.Values{v}, barWidth)
			if err != nil {
				return nil, 0, 0, err
			}
			bar.XMin = float64(j)
			bar.Offset = offset
			bar.Color = fill
			bar.LineStyle.Width = vg.Points(0.5)
			bar.LineStyle.Dashes = dashes
			p.Add(bar)
			swatch = bar
			labels.XYs = append(labels.XYs, plotter.XY{X: float64(j), Y: v})
			labels.Labels = append(labels.Labels, fmt.Sprintf("%.2f", v))
		}
		if swatch == nil {
			continue
		}
		p.Legend.Add(k.label(), swatch)
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return nil, 0, 0, err
		}
		// Upright numbers would collide over 14-point bars; turned a
		// quarter, each stands over its own bar.
		for i := range l.TextStyle {
			l.TextStyle[i].Font.Size = vg.Points(7)
			l.TextStyle[i].Rotation = math.Pi / 2
			l.TextStyle[i].XAlign = text.XLeft
			l.TextStyle[i].YAlign = text.YCenter
		}
		l.Offset = vg.Point{X: offset, Y: vg.Points(2)}
		p.Add(l)
	}
	p.NominalX(scenarios...)
	p.X.Min, p.X.Max = -0.5, float64(len(scenarios))-0.5
	if top == 0 {
		top = 1
	}
	// Headroom for the bar labels and the legend, which sits inside the
	// top of the plot.
	p.Y.Min = 0
	p.Y.Max = top * (1.2 + 0.07*float64(len(series)))
	p.Legend.Top = true
	groupWidth := vg.Length(len(series))*barWidth + vg.Points(30)
	w := max(8*vg.Inch, vg.Length(len(scenarios))*groupWidth+vg.Points(80))
	return p, w, 5 * vg.Inch, nil
}

func lighten(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	mix := func(v uint32) uint8 { return uint8((v>>8 + 2*255) / 3) }
	return color.RGBA{mix(r), mix(g), mix(b), 255}
}

// plottable returns the finite points sorted by offered rate: a line
// through points in measurement order would zigzag if the rig swept
// downwards or retried a rate.
func plottable(pts []Point) plotter.XYs {
	var xys plotter.XYs
	for _, p := range pts {
		if finite(p.OfferedPPS) && finite(p.DeliveredPPS) {
			xys = append(xys, plotter.XY{X: p.OfferedPPS / 1e6, Y: p.DeliveredPPS / 1e6})
		}
	}
	slices.SortStableFunc(xys, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
	return xys
}

func sweepChart(r *Run, scenario string, colors map[string]color.Color) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Delivered vs offered, " + scenario
	p.X.Label.Text = "offered Mpps"
	p.Y.Label.Text = "delivered Mpps"
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	top := 0.0
	for _, res := range scenarioResults(r, scenario) {
		xys := plottable(res.Sweep)
		if len(xys) == 0 {
			continue
		}
		for _, xy := range xys {
			top = math.Max(top, math.Max(xy.X, xy.Y))
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		c := colors[res.Dataplane]
		line.Color, points.Color = c, c
		line.Width = vg.Points(1.5)
		points.Shape = draw.CircleGlyph{}
		if !res.Steered {
			line.Dashes = plotutil.Dashes(2)
		}
		p.Add(line, points)
		p.Legend.Add(label(res), line, points)
	}
	if top <= 0 {
		top = 1
	}
	top *= 1.05
	ideal := plotter.NewFunction(func(x float64) float64 { return x })
	ideal.XMin, ideal.XMax = 0, top
	ideal.Color = color.Gray{Y: 128}
	ideal.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(ideal)
	p.Legend.Add("delivered = offered", ideal)
	p.X.Min, p.Y.Min = 0, 0
	p.X.Max, p.Y.Max = top, top
	return p, nil
}
