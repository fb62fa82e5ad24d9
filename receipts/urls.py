from django.urls import path

from receipts import apis

urlpatterns = [
    path("receipts", apis.ReceiptListApi.as_view(), name="receipt-list"),
    path("receipts/<uuid:receipt_id>", apis.ReceiptDetailApi.as_view(), name="receipt-detail"),
]
