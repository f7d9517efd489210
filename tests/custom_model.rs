//! `examples/custom_model.rs` runs and learns, and the README shows it as it is.

mod support;

#[test]
fn the_readme_shows_the_custom_model_example_as_it_is() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let example = std::fs::read_to_string(format!("{root}/examples/custom_model.rs")).unwrap();
    let section = readme
        .split("## Using Ember from your own crate")
        .nth(1)
        .expect("the README has the section");
    let block = section
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n").next())
        .expect("the section has a rust block");
    assert_eq!(
        block, example,
        "README block and examples/custom_model.rs differ"
    );
}

#[test]
fn the_custom_model_example_learns() {
    let tmp = support::TempDir::new("custom-model");
    let out = support::run_in("custom_model", &[], tmp.path());
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("a line per epoch");
    let accuracy: f64 = last
        .rsplit("accuracy ")
        .next()
        .and_then(|a| a.trim_end_matches('%').parse().ok())
        .expect("an accuracy");
    assert!(accuracy > 85.0, "{stdout}");
}
