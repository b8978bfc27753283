# Sourced by the scripts that fetch Debian packages or sources themselves (kernels.sh,
# qemu10.sh): find_mirror prints the mirror URIs this machine's apt already uses, the first
# one first (release suites only, not -security/-updates; deb822 and one-line sources), so no
# host name is written into the project.
find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk '
      function flush() {
        if (deb && uri != "" && suite_ok) { print uri; found = 1; exit }
        uri = ""; deb = 0; suite_ok = 0
      }
      /^[ \t]*$/ { flush(); next }
      /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      /^URIs:/ { uri = $2 }
      /^Suites:/ {
        for (i = 2; i <= NF; i++)
          if ($i ~ /^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldstable|stable|testing|unstable)$/)
            suite_ok = 1
      }
      END { if (!found) flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    sed -E 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && $3 ~ /^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldstable|stable|testing|unstable)$/ { print $2 }'
  done
}
