//! PNG plots of the training report (ROC, calibration, lead time), drawn with plotters. Text uses a TrueType
//! font found on the machine (DejaVu Sans, from Debian's fonts-dejavu-core); without one, plots are skipped
//! with a warning and the report says so.

use crate::drivers::train::metrics::CalibrationBin;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

const FONT_PATHS: [&str; 3] =
    ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"];

fn font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let path = std::env::var("ONCOWATCH_PLOT_FONT").ok().into_iter().chain(FONT_PATHS.iter().map(|s| s.to_string()));
        for p in path {
            if let Ok(bytes) = std::fs::read(&p) {
                // The font lives for the whole process: plotters keeps a reference to it.
                let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                return plotters::style::register_font("sans-serif", FontStyle::Normal, leaked)
                    .map_err(|_| format!("{p}: not a usable font"));
            }
        }
        Err("no TrueType font found (install fonts-dejavu-core or set ONCOWATCH_PLOT_FONT)".into())
    })
    .clone()
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Draws roc.png, calibration.png and lead_time.png into `dir`.
pub fn all(dir: &Path, roc: &[(f64, f64)], cal: &[CalibrationBin], leads: &[f64]) -> Result<(), String> {
    font()?;
    {
        let path = dir.join("roc.png");
        let root = BitMapBackend::new(&path, (640, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut c = ChartBuilder::on(&root)
            .caption("ROC curve (test split)", ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(err)?;
        c.configure_mesh().x_desc("false positive rate").y_desc("true positive rate").draw().map_err(err)?;
        c.draw_series(LineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3))).map_err(err)?;
        c.draw_series(LineSeries::new(roc.iter().copied(), BLUE.stroke_width(2))).map_err(err)?;
        root.present().map_err(err)?;
    }
    {
        let path = dir.join("calibration.png");
        let root = BitMapBackend::new(&path, (640, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut c = ChartBuilder::on(&root)
            .caption("Calibration (test split, 10 bins)", ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(err)?;
        c.configure_mesh().x_desc("mean predicted probability").y_desc("observed rate").draw().map_err(err)?;
        c.draw_series(LineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3))).map_err(err)?;
        let pts: Vec<(f64, f64)> = cal.iter().filter_map(|b| Some((b.mean_predicted?, b.observed_rate?))).collect();
        c.draw_series(LineSeries::new(pts.clone(), RED.stroke_width(2))).map_err(err)?;
        c.draw_series(pts.iter().map(|p| Circle::new(*p, 4, RED.filled()))).map_err(err)?;
        root.present().map_err(err)?;
    }
    {
        let path = dir.join("lead_time.png");
        let root = BitMapBackend::new(&path, (640, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let bins = 12usize;
        let width = 30.0;
        let mut counts = vec![0u32; bins];
        for l in leads {
            let i = ((l / width).floor().max(0.0) as usize).min(bins - 1);
            counts[i] += 1;
        }
        let ymax = counts.iter().copied().max().unwrap_or(1).max(1) + 1;
        let mut c = ChartBuilder::on(&root)
            .caption("Lead time: first alert to metastasis (test patients)", ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..(bins as f64 * width), 0u32..ymax)
            .map_err(err)?;
        c.configure_mesh().x_desc("days (last bin: 330 or more)").y_desc("patients").draw().map_err(err)?;
        c.draw_series(counts.iter().enumerate().map(|(i, n)| {
            let x0 = i as f64 * width;
            Rectangle::new([(x0 + 2.0, 0), (x0 + width - 2.0, *n)], BLUE.mix(0.6).filled())
        }))
        .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(())
}
