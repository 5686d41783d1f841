#!/usr/bin/env bash
# Prints, counted, the tests that skipped because something the set-up installs was missing
# (mimicit::testkit::skip writes them to target/test-skips.log; under CI=true they fail instead).
log="${MIMICIT_SKIP_LOG:-target/test-skips.log}"
if [[ -s "$log" ]]; then
  n=$(sort -u "$log" | wc -l)
  echo "skipped: $n test(s) could not run here (under CI=true each is a failure):"
  sort -u "$log" | sed 's/^/  /'
else
  echo "skipped: none"
fi
