"""Pagination shared by every list endpoint."""

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=N&page_size=M`` with a cap, so no list endpoint returns everything."""

    page_size_query_param = "page_size"
    max_page_size = 500
