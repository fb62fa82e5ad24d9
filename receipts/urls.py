from django.urls import path

from receipts import apis

urlpatterns = [
    path("receipts", apis.ReceiptListApi.as_view(), name="receipt-list"),
    path("receipts/chain/verify", apis.ChainVerifyApi.as_view(), name="receipt-chain-verify"),
    path("receipts/<uuid:receipt_id>", apis.ReceiptDetailApi.as_view(), name="receipt-detail"),
    path("receipts/<uuid:receipt_id>/verify", apis.ReceiptVerifyApi.as_view(), name="receipt-verify"),
    path("receipts/<uuid:receipt_id>/key.pem", apis.ReceiptKeyApi.as_view(), name="receipt-key"),
]
