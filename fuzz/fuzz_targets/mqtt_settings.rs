#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agegender_fuzz::mqtt_settings(data));
