use cache_core::ttl_presets;

ttl_presets! {
    pub COMPANY = "6 hours";
}

fn main() {}
