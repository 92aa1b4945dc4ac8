#!/usr/bin/env bash
# Builds the Debian package of TaskShed, taskshed_<version>-1_<arch>.deb, with dpkg-deb (no debhelper), from
# `make install DESTDIR=<stage> PREFIX=/usr`, and checks it with lintian when lintian is installed.
#
#   scripts/build-deb.sh [--output DIR] [--build-dir DIR] [--allow-toolchain-runtime] [--no-lintian]
#
#   --output DIR      where the .deb goes (default .build/deb); the script prints its path last
#   --build-dir DIR   package the taskshedd and taskshedctl already built in DIR instead of building them
#   --allow-toolchain-runtime
#                     accept binaries that load Swift's runtime from the toolchain (/opt/swift), as a debug build
#                     does; such a package runs only where that toolchain is installed (the tests use it, to
#                     package the debug build they already have). Without it, such binaries are refused.
#   --no-lintian      skip lintian
#
# Without --build-dir it builds both executables with `swift build -c release --static-swift-stdlib` in
# .build/deb (its own scratch path, so that it neither relinks nor invalidates the developer's .build/release),
# linked with -z now (lintian's hardening-no-bindnow; RELRO is the linker's default). A plain build loads
# libswiftCore.so, Foundation and the rest from the toolchain, which no Debian package provides; statically
# linked, the binaries need only libuv1, liblmdb0, libhttp-parser2.9, libpq5, libc6, libstdc++6 and libgcc-s1. The
# dependencies are computed with dpkg-shlibdeps.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
output=$repo/.build/deb
build_dir=""
allow_toolchain=no
run_lintian=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --output) output=$2; shift 2 ;;
        --build-dir) build_dir=$2; shift 2 ;;
        --allow-toolchain-runtime) allow_toolchain=yes; shift ;;
        --no-lintian) run_lintian=no; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-deb: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$output"
output=$(cd "$output" && pwd)

upstream_version=$(sed -n 's/^ *public static let current = "\([^"]*\)".*/\1/p' \
    "$repo/Sources/TaskShedProtocol/TaskShedVersion.swift")
if [ -z "$upstream_version" ]; then
    echo "build-deb: no version in Sources/TaskShedProtocol/TaskShedVersion.swift" >&2
    exit 1
fi
# -1: the first Debian revision of that upstream version (a non-native package: changelog.Debian.gz).
version=$upstream_version-1
arch=$(dpkg --print-architecture)
maintainer="TaskShed maintainers <maintainers@users.noreply.r-seed-bf8f1f8b.example>"
# The last commit's date, so that the same source gives the same package.
date_rfc2822=$(git -C "$repo" log -1 --format=%aD 2>/dev/null || date -R)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}

if [ -z "$build_dir" ]; then
    # Two commands: with two --product flags SwiftPM builds only the last.
    for product in taskshedd taskshedctl; do
        swift build --package-path "$repo" --scratch-path "$repo/.build/deb" -c release --static-swift-stdlib \
            -Xlinker -z -Xlinker now --product "$product"
    done
    build_dir=$repo/.build/deb/release
fi
build_dir=$(cd "$build_dir" && pwd)
for binary in taskshedd taskshedctl; do
    [ -x "$build_dir/$binary" ] || { echo "build-deb: $build_dir/$binary is not built" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/taskshed-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The layout dpkg-shlibdeps expects (debian/<package>/ beside debian/control), so that it knows the binaries'
# package and that their $ORIGIN RUNPATH is /usr/bin, whose libraries are none.
root=$work/src/debian/taskshed

# Libraries the binaries load that no Debian package owns (the toolchain's Swift runtime).
unowned=()
for binary in taskshedd taskshedctl; do
    while read -r path; do
        dpkg -S "$(readlink -f "$path")" >/dev/null 2>&1 || dpkg -S "$path" >/dev/null 2>&1 || unowned+=("$path")
    done < <(ldd "$build_dir/$binary" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p')
done
if [ "${#unowned[@]}" -gt 0 ]; then
    if [ "$allow_toolchain" = no ]; then
        echo "build-deb: $build_dir links libraries no Debian package provides:" >&2
        printf '  %s\n' "${unowned[@]}" | sort -u >&2
        echo "build-deb: build with --static-swift-stdlib (run without --build-dir), or pass --allow-toolchain-runtime" >&2
        exit 1
    fi
    echo "build-deb: warning: this package needs the Swift toolchain's runtime (--allow-toolchain-runtime)" >&2
fi

make -s -C "$repo" install DESTDIR="$root" PREFIX=/usr BUILD_DIR="$build_dir" GEN_DIR="$work/generated" >&2

# What dh_strip, dh_installman, dh_installdocs and dh_installchangelogs would do.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/taskshedd" \
    "$root/usr/bin/taskshedctl"
# bash-completion loads the script as a library: no #! line (lintian: bash-completion-with-hashbang).
sed -i '1{/^#!/d}' "$root/usr/share/bash-completion/completions/taskshedctl"
gzip -9n "$root/usr/share/man/man8/taskshedd.8" "$root/usr/share/man/man1/taskshedctl.1"
doc=$root/usr/share/doc/taskshed
install -m 0644 "$repo/packaging/debian/copyright" "$doc/copyright"
gzip -9n < "$repo/CHANGELOG.md" > "$doc/changelog.gz"
cat > "$work/changelog.Debian" <<EOF
taskshed ($version) unstable; urgency=medium

  * Package of TaskShed $upstream_version, built by scripts/build-deb.sh.

 -- $maintainer  $date_rfc2822
EOF
gzip -9n < "$work/changelog.Debian" > "$doc/changelog.Debian.gz"
install -D -m 0644 "$repo/packaging/debian/lintian-overrides" "$root/usr/share/lintian/overrides/taskshed"
chmod 0644 "$doc/changelog.gz" "$doc/changelog.Debian.gz"

# Depends: the shared libraries' packages (dpkg-shlibdeps reads a debian/control for the package name), then
# what the maintainer scripts run: systemd-sysusers (as dh_installsysusers adds it).
mkdir -m 0755 "$root/DEBIAN"
printf 'Source: taskshed\n\nPackage: taskshed\nArchitecture: any\n' > "$work/src/debian/control"
shlibdeps_flags=()
[ "$allow_toolchain" = yes ] && shlibdeps_flags+=(--ignore-missing-info)
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "${shlibdeps_flags[@]}" \
    -e"$root/usr/bin/taskshedd" -e"$root/usr/bin/taskshedctl" 2>"$work/shlibdeps.err" \
    | sed -n 's/^shlibs:Depends=//p') || { cat "$work/shlibdeps.err" >&2; exit 1; }
[ "$allow_toolchain" = yes ] || [ ! -s "$work/shlibdeps.err" ] || cat "$work/shlibdeps.err" >&2
[ -n "$shlibs" ] || { echo "build-deb: dpkg-shlibdeps computed no dependencies" >&2; exit 1; }
depends="$shlibs, systemd | systemd-standalone-sysusers | systemd-sysusers"

find "$root" -type d -exec chmod 0755 {} +
for script in postinst prerm postrm; do
    install -m 0755 "$repo/packaging/debian/$script" "$root/DEBIAN/$script"
done
echo /etc/taskshed/taskshedd.toml > "$root/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: taskshed
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Section: admin
Priority: optional
Description: task scheduler daemon with a binary protocol over a Unix socket
 TaskShed keeps scheduled tasks (one-off, retried with backoff, recurring) in
 an embedded LMDB store or a PostgreSQL database shared by several daemons,
 and hands each task to a worker when it is due, under a lease.
 .
 This package contains the daemon taskshedd, run by systemd through socket
 activation as the taskshed user, its configuration file
 /etc/taskshed/taskshedd.toml, and the command-line client taskshedctl, with
 their manual pages and shell completions.
EOF
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

deb=$output/taskshed_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2

if [ "$run_lintian" = yes ]; then
    if command -v lintian >/dev/null 2>&1; then
        suppress=()
        # A debug build's RUNPATH names the toolchain (/opt/swift/...): the point of --allow-toolchain-runtime.
        [ "$allow_toolchain" = yes ] && suppress+=(--suppress-tags custom-library-search-path)
        lintian --fail-on error,warning --display-info "${suppress[@]}" "$deb" >&2
    else
        echo "build-deb: lintian is not installed (scripts/ensure-deps.sh installs it); not checked" >&2
    fi
fi
echo "$deb"
