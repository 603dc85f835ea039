//! End-to-end tests of the console server's framebuffer terminal: output scrolled through
//! `write`, also after a program was killed in the middle of its output, lands on every text
//! row.

mod common;

use std::time::Duration;

use common::{Screen, Vm};

/// Upper bound for a boot plus a short program under TCG on a loaded 2-core machine.
const BOOT: Duration = common::BOOT_LIMIT;
/// Upper bound for one shell command.
const STEP: Duration = common::STEP_LIMIT;
const PROMPT: &str = "enigma$ ";
/// Pixel rows of a text row (the 16-pixel font).
const TEXT_ROW_HEIGHT: usize = 16;

/// The pixels of text row `row`.
fn text_row(screen: &Screen, row: usize) -> &[u8] {
    let bytes_per_row = screen.width * 3;
    let start = row * TEXT_ROW_HEIGHT * bytes_per_row;
    &screen.rgb[start..start + TEXT_ROW_HEIGHT * bytes_per_row]
}

/// Runs `command` at the prompt and waits for the next prompt.
fn run_command(vm: &mut Vm, command: &str) {
    let start = vm.output_len();
    vm.send(&format!("{command}\n"));
    vm.wait_for_after(start, PROMPT, STEP);
}

#[test]
fn lines_scrolled_through_write_fill_every_text_row_also_after_a_kill_mid_output() {
    let mut vm = Vm::boot_with_monitor(&[]);
    vm.wait_for(PROMPT, BOOT);
    // Killed while writing.
    let start = vm.output_len();
    vm.send("yes\n");
    vm.wait_for_after(start, "y\r\ny\r\ny\r\n", STEP);
    // The shell makes `yes` the foreground process just after starting it; on a loaded host
    // the first Ctrl-C can land before that (the known window until spawn can start a
    // process suspended), so press it again until the prompt is back, as a user would.
    let deadline = std::time::Instant::now() + STEP;
    loop {
        vm.send("\x03");
        let since = vm.output_len();
        std::thread::sleep(std::time::Duration::from_millis(500));
        if vm.output().get(since.saturating_sub(PROMPT.len())..).is_some_and(|tail| tail.contains(PROMPT)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Ctrl-C never ended `yes`");
    }

    // More lines than the screen has rows: every row is drawn afresh. All rows but the last
    // (the new prompt) show the same line.
    run_command(&mut vm, "yes -n 60 0123456789");
    let screen = vm.screendump();
    let rows = screen.height / TEXT_ROW_HEIGHT;
    let line = text_row(&screen, 0).to_vec();
    let pixels = line.as_chunks::<3>().0;
    let lit = pixels.iter().filter(|&pixel| pixel != &pixels[0]).count();
    assert!(lit > 100, "the top row shows {lit} lit pixels");
    let differing = |screen: &Screen| (0..rows).filter(|&row| text_row(screen, row) != line).collect::<Vec<_>>();
    assert_eq!(differing(&screen), [rows - 1], "rows that do not show the line");

    // Fewer lines than rows: the drawn rows move up by 11 (the command line and 10 lines),
    // so the command line ends up 11 rows above the bottom and every other row but the
    // last shows the line.
    run_command(&mut vm, "yes -n 10 0123456789");
    let screen = vm.screendump();
    assert_eq!(differing(&screen), [rows - 12, rows - 1], "rows that do not show the line");

    vm.send("shutdown\n");
    let (code, output) = vm.wait_exit(STEP);
    assert_eq!(code, 0, "{output}");
}
