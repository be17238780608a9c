use cache_core::cached;

struct Filter {
    team: u32,
}

#[cached(key = "search:<filter>")]
async fn search(filter: &Filter) -> u32 {
    filter.team
}

fn main() {}
