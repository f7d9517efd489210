//! The reporting helpers write files a person can open.

use ember::report::{plot_curves, Curve, MetricsCsv, Panel};

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ember-report-{}-{name}", std::process::id()))
}

#[test]
fn svg_plot_has_titles_labels_legend_and_lines() {
    let path = temp("curves.svg");
    let curve = |name: &str, k: f64| Curve {
        name: name.to_string(),
        points: (1..=5).map(|e| (e as f64, k / e as f64)).collect(),
    };
    let panels = [
        Panel {
            title: "Loss".into(),
            x_label: "epoch".into(),
            y_label: "cross-entropy (nats)".into(),
            curves: vec![curve("train", 1.0), curve("test", 1.2)],
        },
        Panel {
            title: "Accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy (%)".into(),
            curves: vec![curve("train", 90.0)],
        },
    ];
    plot_curves(&path, &panels).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(svg.starts_with("<svg"));
    for text in [
        "Loss",
        "Accuracy",
        "cross-entropy (nats)",
        "epoch",
        "train",
        "test",
    ] {
        assert!(svg.contains(text), "the SVG lacks {text:?}");
    }
    assert!(svg.matches("<polyline").count() >= 3, "one line per curve");
}

#[test]
fn csv_rejects_ragged_rows() {
    let path = temp("metrics.csv");
    let mut csv = MetricsCsv::create(&path, &["epoch", "loss", "accuracy"]).unwrap();
    csv.row(&[1.0, 0.5, 0.9]).unwrap();
    let err = csv.row(&[2.0]).unwrap_err();
    assert!(err.to_string().contains("a row of 1 values for 3 columns"));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "epoch,loss,accuracy\n1,0.5,0.9\n"
    );
    std::fs::remove_file(&path).unwrap();
}
