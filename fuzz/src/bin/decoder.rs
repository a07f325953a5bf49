fn main() {
    afl::fuzz!(|data: &[u8]| sprout_fuzz::decoder::run(data));
}
