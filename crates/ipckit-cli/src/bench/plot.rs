//! `--plot`: the latency distributions as an SVG.

use anyhow::{Result, anyhow};

use super::Row;
use super::measure::Measured;

/// The latency distributions as an SVG, drawn with `plotters`: for each
/// transport, the round-trip time (log scale) at each percentile from 0 to
/// 99.99 % (x on a "nines" scale: 90 %, 99 %, 99.9 % equally spaced).
pub(super) fn svg(rows: &[Row]) -> Result<String> {
    use plotters::prelude::*;
    const NINES: f64 = 4.0;
    const COLOURS: [RGBColor; 8] = [
        RGBColor(0x00, 0x00, 0x00),
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
    ];
    let ok: Vec<(&str, &Measured)> = rows
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok().map(|m| (r.transport.name(), m)))
        .collect();
    let lo = ok
        .iter()
        .map(|(_, m)| m.hist.min().max(1))
        .min()
        .unwrap_or(1);
    let hi = ok
        .iter()
        .map(|(_, m)| m.hist.value_at_quantile(0.9999))
        .max()
        .unwrap_or(2)
        .max(lo * 10);
    let mut text = String::new();
    let plot_error = |e: &dyn std::fmt::Display| anyhow!("draw the latency plot: {e}");
    {
        let root = SVGBackend::with_string(&mut text, (760, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "ipckit bench: round-trip latency by percentile",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..NINES, (lo as f64..hi as f64).log_scale())
            .map_err(|e| plot_error(&e))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .x_labels(NINES as usize + 1)
            .x_label_formatter(&|nines| match nines.round() as i32 {
                0 => "0%".to_owned(),
                k => format!("{}%", 100.0 - 100.0 / 10f64.powi(k)),
            })
            .y_label_formatter(&|ns| {
                if *ns >= 1e6 {
                    format!("{} ms", ns / 1e6)
                } else if *ns >= 1e3 {
                    format!("{} µs", ns / 1e3)
                } else {
                    format!("{ns} ns")
                }
            })
            .draw()
            .map_err(|e| plot_error(&e))?;
        for (i, (name, m)) in ok.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points = (0..=80).map(|step| {
                let nines = f64::from(step) * NINES / 80.0;
                let ns = m.hist.value_at_quantile(1.0 - 10f64.powf(-nines)) as f64;
                (nines, ns.max(lo as f64))
            });
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(|e| plot_error(&e))?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 2), (x + 16, y + 2)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_error(&e))?;
        root.present().map_err(|e| plot_error(&e))?;
    }
    text.push('\n');
    Ok(text)
}
