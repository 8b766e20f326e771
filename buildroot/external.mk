include $(sort $(wildcard $(BR2_EXTERNAL_OUTGUARD_PATH)/package/*/*.mk))
