//! The order of libstdc++'s `std::sort` (GCC 12, as in Debian's 0.13), which
//! 0.13's `ls` uses to sort a listing.
//!
//! `std::sort` is an introsort and not stable: entries that compare equal
//! (same name: a current file and its old versions; same size with `-S`)
//! come out in an order that depends on the algorithm's exact steps. To print
//! listings byte for byte as 0.13 does we follow those steps: median-of-three
//! pivot moved to the front, Hoare partition, recursion on the right part, a
//! depth limit of 2·⌊log2 n⌋ after which the part is heap-sorted, parts of at
//! most 16 elements left to one final insertion sort. The golden test holds
//! this port to orders that g++ produced.
//!
//! 0.13's reverse sort (`ls -r`) is not a strict weak ordering (equal keys
//! compare "less" both ways), where C++'s unguarded loops may run off the
//! array. Every loop here is bounded, so such comparators give some order,
//! never a panic; for a proper ordering the bounds never bind and the result is
//! libstdc++'s.
//!
//! Knows nothing of directories: it sorts any slice with a "less" closure.

/// libstdc++'s `_S_threshold`.
const THRESHOLD: usize = 16;

/// Sorts `v` as `std::sort(v.begin(), v.end(), less)` would.
pub fn cxx_sort<T>(v: &mut [T], less: &mut dyn FnMut(&T, &T) -> bool) {
    let n = v.len();
    if n < 2 {
        return;
    }
    let depth = 2 * (usize::BITS - 1 - n.leading_zeros()) as usize;
    introsort_loop(v, 0, n, depth, less);
    final_insertion_sort(v, n, less);
}

fn introsort_loop<T>(
    v: &mut [T],
    first: usize,
    mut last: usize,
    mut depth: usize,
    less: &mut dyn FnMut(&T, &T) -> bool,
) {
    while last - first > THRESHOLD {
        if depth == 0 {
            heap_sort(&mut v[first..last], less);
            return;
        }
        depth -= 1;
        let cut = partition_pivot(v, first, last, less);
        introsort_loop(v, cut, last, depth, less);
        last = cut;
    }
}

fn partition_pivot<T>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &mut dyn FnMut(&T, &T) -> bool,
) -> usize {
    let mid = first + (last - first) / 2;
    move_median_to_first(v, first, first + 1, mid, last - 1, less);
    unguarded_partition(v, first + 1, last, first, less)
}

fn move_median_to_first<T>(
    v: &mut [T],
    result: usize,
    a: usize,
    b: usize,
    c: usize,
    less: &mut dyn FnMut(&T, &T) -> bool,
) {
    let pick = if less(&v[a], &v[b]) {
        if less(&v[b], &v[c]) {
            b
        } else if less(&v[a], &v[c]) {
            c
        } else {
            a
        }
    } else if less(&v[a], &v[c]) {
        a
    } else if less(&v[b], &v[c]) {
        c
    } else {
        b
    };
    v.swap(result, pick);
}

/// Hoare partition of `[first, last)` around `v[pivot]` (which lies before
/// `first`); returns the cut.
fn unguarded_partition<T>(
    v: &mut [T],
    mut first: usize,
    mut last: usize,
    pivot: usize,
    less: &mut dyn FnMut(&T, &T) -> bool,
) -> usize {
    loop {
        while first < last && less(&v[first], &v[pivot]) {
            first += 1;
        }
        if last == 0 {
            return first;
        }
        last -= 1;
        while last > pivot && less(&v[pivot], &v[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        v.swap(first, last);
        first += 1;
    }
}

fn final_insertion_sort<T>(v: &mut [T], n: usize, less: &mut dyn FnMut(&T, &T) -> bool) {
    if n > THRESHOLD {
        insertion_sort(v, 0, THRESHOLD, less);
        for i in THRESHOLD..n {
            linear_insert(v, i, less);
        }
    } else {
        insertion_sort(v, 0, n, less);
    }
}

fn insertion_sort<T>(v: &mut [T], first: usize, last: usize, less: &mut dyn FnMut(&T, &T) -> bool) {
    for i in first + 1..last {
        if less(&v[i], &v[first]) {
            // move_backward + assign: the element goes to the front.
            v[first..=i].rotate_right(1);
        } else {
            linear_insert(v, i, less);
        }
    }
}

/// `__unguarded_linear_insert`: moves `v[i]` left past every element it is
/// less than. Shifting by swaps keeps the element at `j` while comparing.
fn linear_insert<T>(v: &mut [T], i: usize, less: &mut dyn FnMut(&T, &T) -> bool) {
    let mut j = i;
    while j > 0 && less(&v[j], &v[j - 1]) {
        v.swap(j, j - 1);
        j -= 1;
    }
}

/// `std::__partial_sort(first, last, last)`: make_heap, then sort_heap.
fn heap_sort<T>(v: &mut [T], less: &mut dyn FnMut(&T, &T) -> bool) {
    let len = v.len();
    if len < 2 {
        return;
    }
    let mut parent = (len - 2) / 2;
    loop {
        adjust_heap(v, parent, len, less);
        if parent == 0 {
            break;
        }
        parent -= 1;
    }
    let mut last = len;
    while last > 1 {
        last -= 1;
        // __pop_heap: the top goes to `last`, the old `v[last]` sifts from 0.
        v.swap(0, last);
        adjust_heap(v, 0, last, less);
    }
}

/// `__adjust_heap` followed by `__push_heap` for the value that starts at
/// `hole`, over `v[..len]`. The value is carried by swaps, so each step
/// moves it exactly where libstdc++ would store it.
fn adjust_heap<T>(v: &mut [T], mut hole: usize, len: usize, less: &mut dyn FnMut(&T, &T) -> bool) {
    let top = hole;
    let mut child = hole;
    while child < (len - 1) / 2 {
        child = 2 * (child + 1);
        if less(&v[child], &v[child - 1]) {
            child -= 1;
        }
        v.swap(hole, child);
        hole = child;
    }
    if len & 1 == 0 && child == (len - 2) / 2 {
        child = 2 * (child + 1);
        v.swap(hole, child - 1);
        hole = child - 1;
    }
    // __push_heap: the value (now at `hole`) rises while its parent is less.
    while hole > top {
        let parent = (hole - 1) / 2;
        if !less(&v[parent], &v[hole]) {
            break;
        }
        v.swap(hole, parent);
        hole = parent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Orders g++ 12 -O2 `std::sort` gave for keys `(s >> 16) % 7` of an LCG
    /// (s = s * 1103515245 + 12345, from 12345) carried over the sizes, as
    /// "n: original positions in sorted order".
    const GOLDEN: &[&str] = &[
        "5: 0 1 4 2 3",
        "17: 16 13 7 10 0 14 1 15 12 9 8 3 6 5 11 4 2",
        "40: 30 0 33 35 21 24 17 29 11 4 1 8 37 3 26 25 2 36 32 39 5 18 7 20 23 27 34 14 19 38 10 31 16 22 12 13 28 9 15 6",
        "100: 43 95 74 37 81 7 63 24 64 89 12 65 66 72 76 77 30 50 47 42 20 19 16 15 85 92 9 8 98 96 45 94 48 49 91 56 58 90 82 68 78 99 32 39 11 1 4 41 80 31 29 27 69 23 28 6 83 10 86 88 46 38 34 3 35 51 79 93 75 52 73 25 70 33 53 59 97 55 67 5 18 57 14 62 2 44 87 0 71 13 84 17 21 22 26 61 60 54 36 40",
        "300: 184 27 121 123 214 213 60 139 36 198 141 57 40 222 142 144 177 174 46 168 145 160 152 150 148 250 76 95 275 73 261 259 15 89 102 283 296 238 68 106 79 2 299 86 116 93 100 101 134 104 119 113 81 225 0 298 281 279 278 277 276 270 255 252 247 239 231 149 224 223 219 217 215 209 201 199 196 192 182 181 161 29 10 9 11 44 65 18 28 74 75 55 34 77 35 14 56 3 244 58 234 237 240 135 153 137 147 251 13 17 254 185 203 205 195 210 211 32 31 188 186 164 26 25 24 23 176 175 229 233 64 130 8 273 115 6 67 286 70 72 120 267 97 264 125 292 297 290 127 39 1 83 84 232 169 171 204 294 180 71 183 288 289 166 91 92 19 131 129 133 260 126 266 52 165 12 50 156 110 48 157 158 190 272 230 262 208 20 33 293 258 16 285 263 291 253 228 226 5 271 243 241 202 63 172 173 47 122 163 43 62 162 107 105 155 189 99 98 193 59 90 146 136 138 132 128 265 140 143 82 53 7 85 87 88 94 96 287 103 69 268 109 111 112 66 114 117 118 206 212 191 45 21 49 80 159 22 197 248 151 30 221 246 220 284 194 187 282 218 280 216 274 38 207 295 4 78 37 200 236 249 51 54 245 154 256 257 242 61 124 41 235 167 170 269 227 178 179 42 108",
    ];

    #[test]
    fn same_order_as_libstdcxx() {
        let mut s: u32 = 12345;
        for line in GOLDEN {
            let (n, want) = line.split_once(':').unwrap();
            let n: usize = n.parse().unwrap();
            let mut v: Vec<(u32, usize)> = (0..n)
                .map(|i| {
                    s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    ((s >> 16) % 7, i)
                })
                .collect();
            cxx_sort(&mut v, &mut |a, b| a.0 < b.0);
            let got: Vec<String> = v.iter().map(|e| e.1.to_string()).collect();
            assert_eq!(got.join(" "), want.trim(), "n = {n}");
        }
    }

    #[test]
    fn heap_sort_sorts_and_bad_comparators_do_not_panic() {
        let mut v: Vec<u32> = (0..200).map(|i| (i * 7919) % 211).collect();
        heap_sort(&mut v, &mut |a, b| a < b);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        let mut w: Vec<u32> = (0..500).map(|i| i % 3).collect();
        cxx_sort(&mut w, &mut |a, b| a <= b);
        cxx_sort(&mut w, &mut |_, _| true);
        cxx_sort(&mut w, &mut |_, _| false);
        assert_eq!(w.len(), 500);
    }
}
