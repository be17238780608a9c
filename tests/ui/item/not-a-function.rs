use cache_core::cached;

#[cached]
struct Employee;

fn main() {}
