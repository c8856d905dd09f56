//! gemm's matrix product over strided views of slices: `dst (+)= lhs · rhs`, the
//! destination row- or column-major.

/// A row-major view of a matrix in a slice: element `(i, j)` is at
/// `i · row_stride + j · column_stride`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    columns: usize,
    row_stride: usize,
    column_stride: usize,
}

impl<'a> Matrix<'a> {
    /// A contiguous row-major `rows × columns` matrix.
    pub(super) fn row_major(data: &'a [f32], rows: usize, columns: usize) -> Self {
        Self {
            data,
            rows,
            columns,
            row_stride: columns,
            column_stride: 1,
        }
    }

    /// The transposed view of the same values.
    pub(super) fn transposed(self) -> Self {
        Self {
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element the view addresses lies inside its slice.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.columns == 0
            || (self.rows - 1) * self.row_stride + (self.columns - 1) * self.column_stride
                < self.data.len()
    }
}

/// How a matrix product's destination lies in its slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// Element `(i, j)` of an `m × n` matrix at `i · n + j`.
    RowMajor,
    /// Element `(i, j)` of an `m × n` matrix at `i + j · m`.
    ColumnMajor,
}

/// `dst += lhs · rhs`, `dst` laid out as `layout` says; on the calling thread, or on all
/// of rayon's when `parallel`.
pub(super) fn gemm_add(dst: &mut [f32], layout: Layout, lhs: Matrix, rhs: Matrix, parallel: bool) {
    gemm_product(dst, layout, lhs, rhs, parallel, true);
}

/// `dst = lhs · rhs`, as [`gemm_add`] but without reading `dst` (no zeroing pass first).
pub(super) fn gemm_set(dst: &mut [f32], layout: Layout, lhs: Matrix, rhs: Matrix, parallel: bool) {
    gemm_product(dst, layout, lhs, rhs, parallel, false);
}

/// `dst = lhs · rhs`, plus `dst`'s own values when `read_dst`.
fn gemm_product(
    dst: &mut [f32],
    layout: Layout,
    lhs: Matrix,
    rhs: Matrix,
    parallel: bool,
    read_dst: bool,
) {
    let (m, n, k) = (lhs.rows, rhs.columns, lhs.columns);
    let (dst_column_stride, dst_row_stride) = match layout {
        Layout::RowMajor => (1, n),
        Layout::ColumnMajor => (m, 1),
    };
    assert!(rhs.rows == k && dst.len() == m * n && lhs.in_bounds() && rhs.in_bounds());
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertion above checks that `dst` holds exactly the m × n result (in
    // either layout) and that every element `lhs` (m × k) and `rhs` (k × n) address lies
    // inside their slices; `dst` is borrowed mutably, so it overlaps neither.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_column_stride as isize,
            dst_row_stride as isize,
            read_dst,
            lhs.data.as_ptr(),
            lhs.column_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.column_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
