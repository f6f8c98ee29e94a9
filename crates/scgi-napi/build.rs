fn main() {
    // The addon's link setup; nothing to do for the engine alone (fuzz/).
    #[cfg(feature = "napi")]
    napi_build::setup();
}
