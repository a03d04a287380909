#!/usr/bin/env bash
# Prepares a host for rstmon: reserves hugepages (on one NUMA node or spread), mounts hugetlbfs,
# loads the user-space I/O driver and binds the capture NICs to it; `restore` undoes what
# `setup` did. rstmon-hugepages.service runs it before rstmon starts (deploy/README.md).
#
# --dry-run prints every command it would run ("+ ..."; "# ..." lines explain a skipped step)
# and changes nothing; it needs no root, so it shows what a configuration would do.
set -euo pipefail

prog=hugepages-and-bind

usage() {
    cat <<EOF
usage: $0 [--dry-run] setup|restore|status [options]

  setup     reserve hugepages, mount hugetlbfs, load the driver, bind the NICs
  restore   bind the NICs back to the drivers they had, unmount, give the hugepages back
  status    show hugepages, hugetlbfs mounts and NIC drivers (changes nothing)

options (defaults from the environment, as /etc/rstmon/rstmon.env sets it):
  --pages N        hugepages to have reserved, at least     [RSTMON_HUGEPAGES, 1024]
  --size 2M|1G     page size                                 [RSTMON_HUGEPAGE_SIZE, 2M]
  --node N         reserve on NUMA node N, the NIC's node    [RSTMON_NUMA_NODE, any]
                   (cat /sys/bus/pci/devices/<pci>/numa_node)
  --mount DIR      hugetlbfs mount point                     [RSTMON_HUGEPAGE_MOUNT,
                                                              /dev/hugepages, 1G: /dev/hugepages1G]
  --group G        let group G use the mount (mode 1770), to run rstmon as a dedicated user
                                                             [RSTMON_HUGEPAGE_GROUP]
  --pci BDF        a NIC to bind, e.g. 0000:03:00.0; repeat for more
                                                             [RSTMON_PCI_DEVICES, space separated]
  --driver D       driver to bind them to                    [RSTMON_DRIVER, vfio-pci]
  --to-driver D    restore: bind back to D, not the remembered driver
  --force          bind a NIC even when its kernel interface is up
  --state-dir DIR  where setup remembers what it changed     [RSTMON_STATE_DIR, /run/rstmon]
  --dry-run        print the commands, change nothing
EOF
}

die() { echo "$prog: error: $*" >&2; exit 1; }
usage_error() { echo "$prog: $*" >&2; usage >&2; exit 2; }
warn() { echo "$prog: warning: $*" >&2; }

dry_run=0
command=""
pages=${RSTMON_HUGEPAGES:-1024}
size=${RSTMON_HUGEPAGE_SIZE:-2M}
node=${RSTMON_NUMA_NODE:-}
mount_dir=${RSTMON_HUGEPAGE_MOUNT:-}
group=${RSTMON_HUGEPAGE_GROUP:-}
read -r -a pci_devices <<<"${RSTMON_PCI_DEVICES:-}"
driver=${RSTMON_DRIVER:-vfio-pci}
to_driver=""
force=0
state_dir=${RSTMON_STATE_DIR:-/run/rstmon}
pci_from_cli=0

while (($#)); do
    case $1 in
        --dry-run) dry_run=1 ;;
        --force) force=1 ;;
        --pages|--size|--node|--mount|--group|--pci|--driver|--to-driver|--state-dir)
            (($# >= 2)) || usage_error "$1 needs a value"
            case $1 in
                --pages) pages=$2 ;;
                --size) size=$2 ;;
                --node) node=$2 ;;
                --mount) mount_dir=$2 ;;
                --group) group=$2 ;;
                --pci)
                    ((pci_from_cli)) || pci_devices=()
                    pci_from_cli=1
                    [[ -n $2 ]] && pci_devices+=("$2") ;;
                --driver) driver=$2 ;;
                --to-driver) to_driver=$2 ;;
                --state-dir) state_dir=$2 ;;
            esac
            shift ;;
        -h|--help) usage; exit 0 ;;
        setup|restore|status)
            [[ -z $command ]] || usage_error "one command at a time ($command, $1)"
            command=$1 ;;
        *) usage_error "unknown argument: $1" ;;
    esac
    shift
done
[[ -n $command ]] || usage_error "no command (setup, restore or status)"

# ---- validation: everything that can be known before changing anything -------------------

[[ $pages =~ ^[0-9]+$ ]] || die "--pages: '$pages' is not a whole number"
case ${size^^} in
    2M|2MB|2048K|2048KB) size=2M; page_kb=2048 ;;
    1G|1GB|1024M|1048576K|1048576KB) size=1G; page_kb=1048576 ;;
    *) die "--size: '$size' is not a hugepage size rstmon uses (2M or 1G)" ;;
esac
[[ -n $mount_dir ]] || { [[ $size == 1G ]] && mount_dir=/dev/hugepages1G || mount_dir=/dev/hugepages; }
[[ $mount_dir == /* ]] || die "--mount: '$mount_dir' is not an absolute path"

size_dir=/sys/kernel/mm/hugepages/hugepages-${page_kb}kB
[[ -d $size_dir ]] || die "this kernel/CPU offers no ${size} hugepages ($size_dir is missing;" \
    "1G pages need the CPU flag pdpe1gb)"
if [[ -n $node ]]; then
    [[ $node =~ ^[0-9]+$ ]] || die "--node: '$node' is not a NUMA node number"
    node_dir=/sys/devices/system/node/node$node
    if [[ ! -d $node_dir ]]; then
        nodes=()
        for n in /sys/devices/system/node/node[0-9]*; do [[ -d $n ]] && nodes+=("${n##*node}"); done
        die "NUMA node $node does not exist (nodes: ${nodes[*]:-none})"
    fi
    nr_file=$node_dir/hugepages/hugepages-${page_kb}kB/nr_hugepages
    state_key=${page_kb}kB-node$node
else
    nr_file=$size_dir/nr_hugepages
    state_key=${page_kb}kB
fi

normalize_pci() {
    local a=${1,,}
    [[ $a =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] && a=0000:$a
    [[ $a =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] ||
        die "'$1' is not a PCI address (domain:bus:device.function, e.g. 0000:03:00.0)"
    [[ -d /sys/bus/pci/devices/$a ]] ||
        die "PCI device $a not found (lspci -D lists the addresses; dpdk-devbind.py --status)"
    echo "$a"
}
pcis=()
for d in "${pci_devices[@]}"; do pcis+=("$(normalize_pci "$d")"); done

if [[ $command != status ]] && ((!dry_run)) && ((EUID != 0)); then
    die "$command must run as root (hugepages, mounts and drivers are the kernel's);" \
        "--dry-run shows the commands without root"
fi

# ---- primitives: print, then (unless a dry run) do ------------------------------------------

# a word as the shell would need it typed: as is when it is plain, else quoted
shell_word() {
    if [[ $1 =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then printf '%s' "$1"; else printf '%q' "$1"; fi
}
show() {
    local line="+" w
    for w in "$@"; do line+=" $(shell_word "$w")"; done
    echo "$line"
}
run() { show "$@"; ((dry_run)) || "$@"; }
# "echo VALUE > FILE", written as the shell would show it
write() {
    echo "+ echo $(shell_word "$2") > $(shell_word "$1")"
    ((dry_run)) || echo "$2" >"$1"
}
note() { echo "# $*"; }

devbind() {
    if ! command -v dpdk-devbind.py >/dev/null; then
        ((dry_run)) || die "dpdk-devbind.py not found (apt-get install dpdk)"
        warn "dpdk-devbind.py is not installed (apt-get install dpdk)"
    fi
    run dpdk-devbind.py "$@"
}

meminfo_kb() {  # meminfo_kb FILE FIELD -> kB
    awk -v f="$2:" '{ for (i = 1; i < NF; i++) if ($i == f) { print $(i + 1); exit } }' "$1"
}

# pagesize of the hugetlbfs mounted at $1 in kB, empty if none is
hugetlbfs_page_kb() {
    local mnt type opts
    while read -r _ mnt type opts _; do
        [[ $type == hugetlbfs && $(printf '%b' "$mnt") == "$1" ]] || continue
        local ps=2M o
        for o in ${opts//,/ }; do [[ $o == pagesize=* ]] && ps=${o#pagesize=}; done
        case $ps in
            *G) echo $((${ps%G} * 1048576)) ;;
            *M) echo $((${ps%M} * 1024)) ;;
            *K|*k) echo "${ps%[Kk]}" ;;
        esac
        return
    done </proc/mounts
}

driver_of() {
    local link=/sys/bus/pci/devices/$1/driver
    if [[ -e $link ]]; then basename "$(readlink -f "$link")"; fi
}

# kernel network interfaces of a PCI device that are up
up_interfaces() {
    local n
    for n in "/sys/bus/pci/devices/$1"/net/* "/sys/bus/pci/devices/$1"/virtio*/net/*; do
        [[ -e $n/flags ]] || continue
        (( $(<"$n/flags") & 0x1 )) && basename "$n"
    done
    return 0
}

state_file() { echo "$state_dir/$1"; }
state_dir_made=0
save_state() {  # save_state NAME VALUE: the first setup's value is what restore returns to
    local f
    f=$(state_file "$1")
    if [[ -e $f ]]; then
        note "$f already remembers $(<"$f") from an earlier setup"
    else
        ((state_dir_made)) || run mkdir -p "$state_dir"
        state_dir_made=1
        write "$f" "$2"
    fi
}

# ---- setup: every check first, so that a refused setup has changed nothing ----------------

hp_current=0
mount_opts=""
mount_have_kb=""
to_bind=()

check_setup() {
    local need_kb avail_kb where other bdf current ifs
    hp_current=$(<"$nr_file")
    if ((pages > hp_current)); then
        need_kb=$(((pages - hp_current) * page_kb))
        if [[ -n $node ]]; then
            avail_kb=$(meminfo_kb "$node_dir/meminfo" MemFree); where="free on node $node"
        else
            avail_kb=$(meminfo_kb /proc/meminfo MemAvailable); where=available
        fi
        ((need_kb <= avail_kb)) ||
            die "$pages ${size} hugepages need $((need_kb / 1024)) MiB more than the $hp_current" \
                "reserved, but only $((avail_kb / 1024)) MiB are $where; ask for fewer pages"
    fi

    mount_have_kb=$(hugetlbfs_page_kb "$mount_dir")
    if [[ -n $mount_have_kb ]]; then
        ((mount_have_kb == page_kb)) ||
            die "$mount_dir is already a hugetlbfs mount of $((mount_have_kb / 1024)) MiB pages," \
                "not $size; choose another --mount"
    else
        other=$(awk -v d="$mount_dir" '$2 == d { t = $3 } END { print t }' /proc/mounts)
        [[ -z $other ]] || die "$mount_dir is already a $other mount; choose another --mount"
        mount_opts=pagesize=$size
        if [[ -n $group ]]; then
            local gid
            gid=$(getent group "$group" | cut -d: -f3) || true
            [[ -n $gid ]] || die "--group: no group '$group' (groupadd --system $group)"
            mount_opts+=,gid=$gid,mode=1770
        fi
    fi

    for bdf in "${pcis[@]}"; do
        current=$(driver_of "$bdf")
        [[ $current == "$driver" ]] && continue
        ifs=$(up_interfaces "$bdf" | tr '\n' ' ')
        if [[ -n $ifs ]] && ((!force)); then
            die "$bdf carries kernel interface ${ifs% }, which is up: binding it to $driver" \
                "takes it away from the kernel (and any connection over it); --force to do it anyway"
        fi
        to_bind+=("$bdf")
    done
    if ((${#to_bind[@]})) && ! command -v dpdk-devbind.py >/dev/null; then
        ((dry_run)) || die "dpdk-devbind.py not found (apt-get install dpdk)"
        warn "dpdk-devbind.py is not installed (apt-get install dpdk)"
    fi
}

reserve_hugepages() {
    if ((hp_current >= pages)); then
        note "$hp_current ${size} hugepages already reserved${node:+ on node $node} (wanted $pages)"
        return
    fi
    save_state "hugepages-$state_key" "$hp_current"
    write "$nr_file" "$pages"
    if ((!dry_run)); then
        local got
        got=$(<"$nr_file")
        ((got >= pages)) ||
            die "the kernel reserved only $got of $pages ${size} hugepages (memory too fragmented:" \
                "reserve them at boot, e.g. hugepagesz=$size hugepages=$pages on the kernel command line)"
    fi
}

mount_hugetlbfs() {
    if [[ -n $mount_have_kb ]]; then
        note "$mount_dir is already a hugetlbfs mount of $size pages"
        return
    fi
    run mkdir -p "$mount_dir"
    run mount -t hugetlbfs -o "$mount_opts" nodev "$mount_dir"
    save_state "mounted-${mount_dir//\//_}" "$mount_dir"
}

load_driver() {
    case $driver in
        vfio-pci)
            if ! compgen -G '/sys/kernel/iommu_groups/*' >/dev/null; then
                warn "no IOMMU groups: vfio-pci needs the IOMMU on (intel_iommu=on or amd_iommu=on," \
                     "iommu=pt on the kernel command line), or vfio's enable_unsafe_noiommu_mode"
            fi
            run modprobe vfio-pci ;;
        uio_pci_generic|igb_uio) run modprobe "$driver" ;;
        *) note "driver $driver: not loading a module for it" ;;
    esac
}

bind_nics() {
    local bdf
    ((${#pcis[@]})) || { note "no NIC to bind (--pci or RSTMON_PCI_DEVICES)"; return; }
    for bdf in "${pcis[@]}"; do
        [[ " ${to_bind[*]} " == *" $bdf "* ]] || note "$bdf is already bound to $driver"
    done
    ((${#to_bind[@]})) || return 0
    load_driver
    for bdf in "${to_bind[@]}"; do
        save_state "driver-$bdf" "$(driver_of "$bdf")"
        if ((force)); then
            run dpdk-devbind.py --bind="$driver" --force "$bdf"
        else
            run dpdk-devbind.py --bind="$driver" "$bdf"
        fi
    done
}

# ---- restore --------------------------------------------------------------------------------

forget() { run rm -f "$(state_file "$1")"; }

unbind_nics() {
    local bdf f orig
    for bdf in "${pcis[@]}"; do
        f=$(state_file "driver-$bdf")
        if [[ -n $to_driver ]]; then
            orig=$to_driver
        elif [[ -e $f ]]; then
            orig=$(<"$f")
        else
            note "$bdf: no driver remembered in $f and no --to-driver: leaving it on $(driver_of "$bdf")"
            continue
        fi
        if [[ -n $orig ]]; then
            devbind --bind="$orig" "$bdf"
        else
            devbind --unbind "$bdf"
        fi
        if [[ -e $f ]]; then forget "driver-$bdf"; fi
    done
}

unmount_hugetlbfs() {
    local key=mounted-${mount_dir//\//_}
    if [[ -e $(state_file "$key") ]]; then
        if [[ -n $(hugetlbfs_page_kb "$mount_dir") ]]; then run umount "$mount_dir"; fi
        forget "$key"
    else
        note "$mount_dir was not mounted by setup: leaving it"
    fi
}

release_hugepages() {
    local f prev
    f=$(state_file "hugepages-$state_key")
    if [[ -e $f ]]; then
        prev=$(<"$f")
        write "$nr_file" "$prev"
        forget "hugepages-$state_key"
    else
        note "no ${size} hugepage count remembered in $f: leaving $(<"$nr_file") reserved"
    fi
}

# ---- status ---------------------------------------------------------------------------------

status() {
    local d n
    for d in /sys/kernel/mm/hugepages/hugepages-*; do
        echo "${d##*-}: $(<"$d/nr_hugepages") reserved, $(<"$d/free_hugepages") free"
        for n in /sys/devices/system/node/node[0-9]*/hugepages/"${d##*/}"; do
            [[ -e $n ]] || continue
            n=${n#/sys/devices/system/node/}
            echo "  ${n%%/*}: $(<"/sys/devices/system/node/$n/nr_hugepages") reserved"
        done
    done
    echo "hugetlbfs mounts:"
    awk '$3 == "hugetlbfs" { print "  " $2 " (" $4 ")" }' /proc/mounts
    for d in "${pcis[@]}"; do echo "$d: driver $(driver_of "$d")"; done
    if command -v dpdk-devbind.py >/dev/null; then dpdk-devbind.py --status-dev net; fi
}

case $command in
    setup)
        check_setup
        reserve_hugepages
        mount_hugetlbfs
        bind_nics ;;
    restore)
        unbind_nics
        unmount_hugetlbfs
        release_hugepages ;;
    status)
        status ;;
esac
