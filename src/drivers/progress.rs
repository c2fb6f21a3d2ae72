//! Progress bars on stderr for long inputs (hidden for short ones and when stderr is not a terminal).

/// A byte-progress bar for `total` bytes of input, or a hidden one.
pub fn bar(enabled: bool, total: u64, what: &str) -> indicatif::ProgressBar {
    if !enabled || total < 4 * 1024 * 1024 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    let template = format!("{{spinner}} {what} {{bytes}}/{{total_bytes}} {{wide_bar}} {{eta}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
