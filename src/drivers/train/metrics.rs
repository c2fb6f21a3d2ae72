//! Evaluation metrics on (probability, 0/1 label) pairs: AUC, AUPRC (average precision), Brier score,
//! expected calibration error over 10 equal-width bins, and the calibration table.

use serde::Serialize;

/// Area under the ROC curve (ties count one half), `None` without both classes.
pub fn auc(pairs: &[(f64, f64)]) -> Option<f64> {
    let mut p: Vec<(f64, bool)> = pairs.iter().map(|(s, y)| (*s, *y > 0.5)).collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (npos, nneg) = (p.iter().filter(|x| x.1).count() as f64, p.iter().filter(|x| !x.1).count() as f64);
    if npos == 0.0 || nneg == 0.0 {
        return None;
    }
    // Rank sum of positives, with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < p.len() {
        let mut j = i;
        while j + 1 < p.len() && p[j + 1].0 == p[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += p[i..=j].iter().filter(|x| x.1).count() as f64 * avg_rank;
        i = j + 1;
    }
    Some((rank_sum - npos * (npos + 1.0) / 2.0) / (npos * nneg))
}

/// Average precision (area under the precision-recall curve, step-wise).
pub fn auprc(pairs: &[(f64, f64)]) -> Option<f64> {
    let mut p: Vec<(f64, bool)> = pairs.iter().map(|(s, y)| (*s, *y > 0.5)).collect();
    p.sort_by(|a, b| b.0.total_cmp(&a.0));
    let npos = p.iter().filter(|x| x.1).count() as f64;
    if npos == 0.0 {
        return None;
    }
    let (mut tp, mut ap) = (0.0, 0.0);
    let mut i = 0;
    while i < p.len() {
        let mut j = i;
        while j + 1 < p.len() && p[j + 1].0 == p[i].0 {
            j += 1;
        }
        let new_tp = p[i..=j].iter().filter(|x| x.1).count() as f64;
        tp += new_tp;
        ap += (new_tp / npos) * (tp / (j + 1) as f64);
        i = j + 1;
    }
    Some(ap)
}

pub fn brier(pairs: &[(f64, f64)]) -> Option<f64> {
    (!pairs.is_empty()).then(|| pairs.iter().map(|(p, y)| (p - y) * (p - y)).sum::<f64>() / pairs.len() as f64)
}

/// One bin of the calibration table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_predicted: Option<f64>,
    pub observed_rate: Option<f64>,
}

/// 10 equal-width bins over [0, 1].
pub fn calibration_table(pairs: &[(f64, f64)]) -> Vec<CalibrationBin> {
    (0..10)
        .map(|b| {
            let (lo, hi) = (b as f64 / 10.0, (b + 1) as f64 / 10.0);
            let inside: Vec<&(f64, f64)> = pairs.iter().filter(|(p, _)| *p >= lo && (*p < hi || (b == 9 && *p <= hi))).collect();
            let n = inside.len();
            let mean = |f: &dyn Fn(&(f64, f64)) -> f64| (n > 0).then(|| inside.iter().map(|x| f(x)).sum::<f64>() / n as f64);
            CalibrationBin { lower: lo, upper: hi, count: n, mean_predicted: mean(&|x| x.0), observed_rate: mean(&|x| x.1) }
        })
        .collect()
}

/// Expected calibration error: Σ (bin share × |mean predicted - observed rate|) over the 10 bins.
pub fn ece(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    Some(calibration_table(pairs).iter().filter_map(|b| Some(b.count as f64 / n * (b.mean_predicted? - b.observed_rate?).abs())).sum())
}

/// ROC curve points (false positive rate, true positive rate), for plotting.
pub fn roc_points(pairs: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut p: Vec<(f64, bool)> = pairs.iter().map(|(s, y)| (*s, *y > 0.5)).collect();
    p.sort_by(|a, b| b.0.total_cmp(&a.0));
    let npos = p.iter().filter(|x| x.1).count().max(1) as f64;
    let nneg = p.iter().filter(|x| !x.1).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = vec![(0.0, 0.0)];
    for (_, y) in p {
        if y {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        out.push((fp / nneg, tp / npos));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_reversed() {
        let perfect = [(0.1, 0.0), (0.2, 0.0), (0.8, 1.0), (0.9, 1.0)];
        assert_eq!(auc(&perfect), Some(1.0));
        let reversed = [(0.9, 0.0), (0.8, 0.0), (0.2, 1.0), (0.1, 1.0)];
        assert_eq!(auc(&reversed), Some(0.0));
        let ties = [(0.5, 0.0), (0.5, 1.0)];
        assert_eq!(auc(&ties), Some(0.5));
        assert_eq!(auprc(&perfect), Some(1.0));
    }

    #[test]
    fn ece_is_zero_when_calibrated() {
        let pairs = [(0.25, 0.0), (0.25, 0.0), (0.25, 0.0), (0.25, 1.0)];
        assert!(ece(&pairs).unwrap() < 1e-12);
        assert!((brier(&pairs).unwrap() - 0.1875).abs() < 1e-12);
    }
}
