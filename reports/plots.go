package reports

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotFile is one plot written into a run folder.
type plotFile struct {
	File  string
	Title string
}

// Plot files of a run folder. Every one is listed so that a re-render removes a plot whose
// data the report no longer holds.
const (
	PlotCDFProgrammed = "provisioning-cdf-programmed.svg"
	PlotCDFReachable  = "provisioning-cdf-reachable.svg"
	PlotScale         = "provisioning-scale.svg"
	PlotThroughput    = "traffic-throughput.svg"
	PlotPacketRate    = "traffic-packet-rate.svg"
	PlotLatency       = "traffic-latency.svg"
)

const plotWidth, plotHeight = 16 * vg.Centimeter, 10 * vg.Centimeter

// writePlots writes every plot r has data for and removes the others; it returns the plots
// written, in the order summary.md shows them.
func writePlots(dir string, r *Report) ([]plotFile, error) {
	builders := []struct {
		file  string
		build func(*Report) (*plot.Plot, error)
	}{
		{PlotCDFProgrammed, func(r *Report) (*plot.Plot, error) {
			return cdfPlot(r, "programmed", func(p Provisioning) []float64 { return p.ProgrammedMS })
		}},
		{PlotCDFReachable, func(r *Report) (*plot.Plot, error) {
			return cdfPlot(r, "reachable", func(p Provisioning) []float64 { return p.ReachableMS })
		}},
		{PlotScale, scalePlot},
		{PlotThroughput, func(r *Report) (*plot.Plot, error) { return trafficPlot(r, TestTCPStream, "TCP throughput") }},
		{PlotPacketRate, func(r *Report) (*plot.Plot, error) { return trafficPlot(r, TestUDPRate, "UDP packet rate") }},
		{PlotLatency, func(r *Report) (*plot.Plot, error) {
			return trafficPlot(r, TestTCPLatency, "TCP request/response p50 latency")
		}},
	}
	var written []plotFile
	for _, b := range builders {
		path := filepath.Join(dir, b.file)
		p, err := b.build(r)
		if err != nil {
			return written, fmt.Errorf("plot %s: %w", b.file, err)
		}
		if p == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return written, fmt.Errorf("remove stale plot: %w", err)
			}
			continue
		}
		w, err := p.WriterTo(plotWidth, plotHeight, "svg")
		if err != nil {
			return written, fmt.Errorf("plot %s: %w", b.file, err)
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			return written, fmt.Errorf("plot %s: %w", b.file, err)
		}
		if err := writeFile(path, buf.Bytes()); err != nil {
			return written, err
		}
		written = append(written, plotFile{File: b.file, Title: p.Title.Text})
	}
	return written, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// roomForLegend raises the top of the y axis so that a legend of entries lines, drawn at the
// top, does not cover the data.
func roomForLegend(p *plot.Plot, entries int) {
	p.Y.Max = p.Y.Min + (p.Y.Max-p.Y.Min)*(1+0.09*float64(entries))
}

// style gives series i its own color, and its own dashes within a family of lines.
func style(l *plotter.Line, i, dashes int) {
	l.Color = plotutil.Color(i)
	l.Dashes = plotutil.Dashes(dashes)
	l.Width = vg.Points(1.5)
}

// cdfPlot draws the distribution of per-endpoint times, one line per mode and size; nil when
// no row kept its samples.
func cdfPlot(r *Report, what string, samples func(Provisioning) []float64) (*plot.Plot, error) {
	p := newPlot("Provisioning: API call to "+what, what+" (ms)", "fraction of endpoints")
	p.Legend.Left, p.Legend.Top = false, false
	p.Legend.XOffs, p.Legend.YOffs = 0, vg.Centimeter
	lines := 0
	for _, row := range sortedProvisioning(r) {
		s := slices.Clone(samples(row))
		if len(s) == 0 {
			continue
		}
		slices.Sort(s)
		xys := make(plotter.XYs, len(s))
		for i, v := range s {
			xys[i] = plotter.XY{X: v, Y: float64(i+1) / float64(len(s))}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("%s %d endpoints: %w", row.Mode, row.Endpoints, err)
		}
		style(l, lines, rank(modeOrder, row.Mode))
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s, %d endpoints, %d hosts", row.Mode, row.Endpoints, row.Hosts), l)
		lines++
	}
	if lines == 0 {
		return nil, nil
	}
	p.Y.Min, p.Y.Max = 0, 1
	return p, nil
}

// scalePlot draws p50 and p99 of programmed and reachable against the number of endpoints,
// per mode; nil when there are fewer than two sizes.
func scalePlot(r *Report) (*plot.Plot, error) {
	p := newPlot("Provisioning time against scale", "endpoints", "ms per endpoint")
	series := []struct {
		name string
		get  func(Provisioning) Summary
		pick func(Summary) float64
	}{
		{"programmed p50", func(p Provisioning) Summary { return p.Programmed }, percentile["p50"]},
		{"programmed p99", func(p Provisioning) Summary { return p.Programmed }, percentile["p99"]},
		{"reachable p50", func(p Provisioning) Summary { return p.Reachable }, percentile["p50"]},
		{"reachable p99", func(p Provisioning) Summary { return p.Reachable }, percentile["p99"]},
	}
	rows := sortedProvisioning(r)
	var modes []string
	minX, maxX := 0, 0
	for _, row := range rows {
		if !slices.Contains(modes, row.Mode) {
			modes = append(modes, row.Mode)
		}
		if minX == 0 || row.Endpoints < minX {
			minX = row.Endpoints
		}
		maxX = max(maxX, row.Endpoints)
	}
	lines := 0
	for _, mode := range modes {
		for si, s := range series {
			var xys plotter.XYs
			for _, row := range rows {
				sum := s.get(row)
				v, ok := toMS(sum.Unit, s.pick(sum))
				if row.Mode != mode || sum.N == 0 || !ok {
					continue
				}
				xys = append(xys, plotter.XY{X: float64(row.Endpoints), Y: v})
			}
			if len(xys) < 2 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", mode, s.name, err)
			}
			style(l, si, rank(modeOrder, mode))
			pts.Color = l.Color
			pts.Shape = draw.CircleGlyph{}
			p.Add(l, pts)
			p.Legend.Add(mode+" "+s.name, l, pts)
			lines++
		}
	}
	if lines == 0 {
		return nil, nil
	}
	// Sweeps span decades (10 to 5000 endpoints): a log axis keeps the small sizes readable.
	if minX > 0 && maxX >= 10*minX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Y.Min = 0
	roomForLegend(p, lines)
	return p, nil
}

// trafficPlot draws test's headline figure as bars, grouped by configuration, one bar per
// path; nil when the test was not run. Figures in another unit than the first are left out
// rather than drawn on the wrong scale.
func trafficPlot(r *Report, test, title string) (*plot.Plot, error) {
	var rows []Traffic
	for _, t := range sortedTraffic(r) {
		if t.Test == test && (len(rows) == 0 || t.Unit == rows[0].Unit) {
			rows = append(rows, t)
		}
	}
	if len(rows) == 0 {
		return nil, nil
	}
	var configs, paths []string
	for _, t := range rows {
		if c := trafficConfig(t); !slices.Contains(configs, c) {
			configs = append(configs, c)
		}
		if !slices.Contains(paths, t.Path) {
			paths = append(paths, t.Path)
		}
	}
	slices.SortStableFunc(paths, func(a, b string) int { return rank(pathOrder, a) - rank(pathOrder, b) })
	p := newPlot(title, "", rows[0].Unit)
	width := vg.Length(float64(plotWidth) * 0.7 / float64(len(configs)*len(paths)+len(configs)))
	for i, path := range paths {
		values := make(plotter.Values, len(configs))
		for _, t := range rows {
			if t.Path == path {
				values[slices.Index(configs, trafficConfig(t))] = t.Value
			}
		}
		bars, err := plotter.NewBarChart(values, width)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Color = color.Black
		bars.LineStyle.Width = vg.Points(0.5)
		bars.Offset = vg.Length(float64(i)-float64(len(paths)-1)/2) * width
		p.Add(bars)
		p.Legend.Add(path, bars)
	}
	p.NominalX(configs...)
	p.Y.Min = 0
	roomForLegend(p, len(paths))
	return p, nil
}
