fn main() {
    afl::fuzz!(|data: &[u8]| sprout_fuzz::engine::run(data));
}
