// Package datadriven runs script-style tests: a file of commands, each with
// the output it is expected to produce. It is loosely modelled on
// github.com/cockroachdb/datadriven (Walk, RunTest, TestData); only tests
// import it.
//
// A script is a list of cases separated by blank lines:
//
//	# A comment: lines starting with # and blank lines between cases
//	<command> [word | key=value]...
//	[input lines, none blank]
//	----
//	<expected output, none or more lines, none blank>
//	<blank line or end of file>
//
// Arguments are separated by spaces or tabs. A value, or a whole word, may be
// Go-quoted ("a b", "\x00") and is then unquoted with strconv.Unquote; a
// quote elsewhere in a token is kept as written. An unterminated or invalid
// quote, or a command without "----", fails the test at file:line.
//
// The expected block is compared byte for byte with what the test function
// returns for the command, so output cannot contain a blank line.
//
// With -rewrite (see Rewrite) the expected blocks are replaced by the actual
// output instead of being checked; the rest of the file is kept byte for
// byte. A file is rewritten by the first RunTest on it in a test binary; later
// runs of the same file (the same script against another engine, say) are
// checked against the new expectations, so they must still agree.
package datadriven
